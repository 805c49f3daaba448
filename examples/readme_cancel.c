/* README: "Timeouts, failure and cancellation" */
#include <stage.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void *slow(void *arg)
{
    int err = stage_sleep(30);
    if (err)
        return stage_task_fail(err, "gave up sleeping");
    return arg;
}

int main(void)
{
    stage_future *task;
    stage_coro_spawn(NULL, slow, NULL, NULL, 0, &task);

    int err = stage_future_wait(task, 0.2);   /* wait at most 0.2 s */
    printf("wait: %s\n", strerror(err));      /* timed out */

    stage_future_cancel(task);                /* its sleep returns ECANCELED */
    stage_future_wait(task, STAGE_FOREVER);
    printf("state: %s\n",
           stage_future_state(task) == STAGE_CANCELLED ? "cancelled" : "?");

    stage_future_unref(task);
    stage_loop_free(stage_loop_current());
    return 0;
}
