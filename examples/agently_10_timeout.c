/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 10: Tunnel timeouts.
 *
 *   tunnel = Tunnel(timeout=None)      -> idle timeout STAGE_FOREVER
 *   gen = tunnel.get_gen(timeout=1)    -> a reader with idle timeout 1 s
 *   result_list = tunnel.get(timeout=5) -> stage_tunnel_collect, 5 s
 *
 * A timeout given to a reader or to collect overrides the tunnel's.  In
 * Agently Stage, the first consumer that starts fixes the timeout for
 * later ones (the seed's comment: get() would use get_gen()'s 1 s); in
 * libstage each reader and each collect keeps its own.
 *
 * The seed only makes the calls; nobody ever puts into this tunnel, so here
 * each ends with its timeout: the reader after 1 s, the collect after 5 s
 * more (6 s in all), with nothing read:
 *
 *   gen ends after 1 s: ETIMEDOUT
 *   get ends after 5 s: ETIMEDOUT, []
 *
 * Without the timeouts, a reader of this tunnel would wait for ever.
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static const char *name(int err)
{
    return err == ETIMEDOUT ? "ETIMEDOUT" : err == EPIPE ? "EPIPE" : "?";
}

static double since(int64_t t0) { return (double)(stage_now() - t0) / 1e9; }

int main(void)
{
    stage_tunnel *tunnel = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    if (!tunnel)
        return 1;

    /* Timeout settings of readers and collect have higher priority. */
    stage_tunnel_reader *gen = stage_tunnel_reader_new(tunnel, seed_time(1));
    int64_t t0 = stage_now();
    void *data;
    int gen_err;
    while ((gen_err = stage_tunnel_next(gen, &data)) == 0)
        printf("%d\n", (int)(intptr_t)data);
    double gen_time = since(t0);
    printf("gen ends after 1 s: %s\n", name(gen_err));

    void **result_list;
    size_t count;
    t0 = stage_now();
    int get_err = stage_tunnel_collect(tunnel, seed_time(5), &result_list,
                                       &count);
    double get_time = since(t0);
    printf("get ends after 5 s: %s, [", name(get_err));
    for (size_t i = 0; i < count; i++)
        printf("%s%d", i ? ", " : "", (int)(intptr_t)result_list[i]);
    printf("]\n");
    free(result_list);

    stage_tunnel_reader_free(gen);
    stage_tunnel_unref(tunnel);
    stage_loop_free(stage_loop_current());
    return gen_err == ETIMEDOUT && get_err == ETIMEDOUT && count == 0 &&
                   gen_time >= seed_time(1) * 0.99 &&
                   get_time >= seed_time(5) * 0.99
               ? 0
               : 1;
}
