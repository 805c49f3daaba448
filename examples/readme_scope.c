/* README: "Structured concurrency: a scope" */
#include <stage.h>
#include <errno.h>
#include <stdio.h>

static void *fetch(void *arg)
{
    const char *what = arg;
    double delay = what[0] == 'b' ? 0.1 : 0.05;
    if (stage_sleep(delay) != 0)           /* ECANCELED when the scope says so */
        return stage_task_fail(ECANCELED, "%s: cancelled", what);
    if (what[0] == 'b')
        return stage_task_fail(EIO, "%s: server said no", what);
    return arg;
}

int main(void)
{
    /* Tasks of a scope: coroutines here, or plain functions on a pool. */
    stage_scope *scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    stage_future *a;
    stage_scope_go_coro(scope, fetch, "apples", NULL, &a);
    stage_scope_go_coro(scope, fetch, "bananas", NULL, NULL);

    void *value;
    printf("not yet: %d\n", stage_future_get(a, 0, &value) == ETIMEDOUT);

    /* Close waits for every task; the failure nobody collected is
     * returned, not lost. */
    int err = stage_scope_close(scope, STAGE_FOREVER);
    const char *task, *message;
    int code;
    for (size_t i = 0; stage_scope_failure(scope, i, &task, &code, &message) == 0; i++)
        printf("failed: %s\n", message);
    printf("close: %s\n", err == EIO ? "EIO" : "?");
    if (stage_future_get(a, 0, &value) == 0)
        printf("a: %s\n", (const char *)value);

    stage_future_unref(a);
    stage_scope_free(scope);
    stage_loop_free(stage_loop_current());
    return 0;
}
