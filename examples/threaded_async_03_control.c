/* SPDX-License-Identifier: MIT */
/*
 * threaded-async.md, blocks 3-4: "Control inversion".
 *
 * client_code, a coroutine on a Stage's loop thread (the seed's
 * server.create_background_task), calls increment(i) for i = 0..9 through
 * its stub: each call queues a request with the server and suspends the
 * client until the server has processed it.  The main thread decides
 * when: it processes three requests, one at a time, then closes the
 * server (the end of `with server:`), which cancels the client's fourth
 * call, so the client stops there.
 *
 *   Processing new client requests
 *   Client got: 1
 *   Processing new client requests
 *   Client got: 2
 *   Processing new client requests
 *   Client got: 3
 *
 * The seed's output assumes "synchronized printing".  Here the order is
 * fixed with the server itself: before each round, main waits until the
 * client's next request is pending (stage_server_wait), which the client
 * issues only after printing what it got; stage_server_process would
 * return EAGAIN at once if no request were pending yet.
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ExecutionRequest: the function asked for and its argument. */
struct request {
    const char *fun;
    int number;
};

/* class Stub(threaded_async.Client): the client's side of the interface. */
static int increment(stage_server *client, int number, int *result)
{
    struct request request = {"increment", number};
    void *reply;
    int err = stage_server_call(client, &request, STAGE_FOREVER, &reply);
    if (err == 0)
        *result = (int)(intptr_t)reply;
    return err;
}

static void *client_code(void *arg)
{
    stage_server *client = arg;
    for (int i = 0; i < 10; i++) {
        int got;
        int err = increment(client, i, &got);
        if (err)
            return (void *)(intptr_t)err; /* the server closed: ECANCELED */
        printf("Client got: %d\n", got);
    }
    return NULL;
}

/* class MyServer(threaded_async.Server): _handle_request. */
static int handle_request(stage_server *srv, void *req, stage_future *future,
                          void *user_data)
{
    struct request *request = req;
    (void)srv;
    (void)user_data;
    if (strcmp(request->fun, "increment") == 0) {
        /* Handle increment request. */
        return stage_future_resolve(future,
                                    (void *)(intptr_t)(request->number + 1),
                                    NULL);
    }
    return ENOSYS; /* assert False, f"Unknown function {request.fun}" */
}

int main(void)
{
    int ok = 1;
    stage_server *server = stage_server_new(handle_request, NULL, NULL);
    stage *runner = stage_new("server", 0, 0);
    if (!server || !runner)
        return 1;
    { /* with server: */
        stage_future *client;
        if (stage_go_coro(runner, client_code, server, NULL, &client))
            return 1;
        for (int i = 0; i < 3; i++) {
            ok &= stage_server_wait(server, STAGE_FOREVER) == 0;
            printf("Processing new client requests\n");
            ok &= stage_server_process(server) == 0;
        }
        ok &= stage_server_close(server) == 0;
        void *err;
        ok &= stage_future_get(client, STAGE_FOREVER, &err) == 0;
        /* ECANCELED: the fourth request was pending at close; EPIPE: it
         * came after. */
        ok &= (intptr_t)err == ECANCELED || (intptr_t)err == EPIPE;
        stage_future_unref(client);
    }
    stage_free(runner);
    stage_server_unref(server);
    stage_loop_free(stage_loop_current());
    return ok ? 0 : 1;
}
