/* README: "Hello, coroutine and thread" */
#include <stage.h>
#include <stdio.h>

static void *greet(void *name)
{
    stage_sleep(0.1); /* suspends this coroutine only */
    printf("hello from %s\n", (const char *)name);
    return name;
}

int main(void)
{
    stage_future *co, *th;
    stage_coro_spawn(NULL, greet, "a coroutine", NULL, 0, &co);
    stage_thread_spawn(greet, "a thread", NULL, &th);

    void *who;
    stage_future_get(th, STAGE_FOREVER, &who); /* main's coroutines run meanwhile */
    printf("the thread returned \"%s\"\n", (const char *)who);
    stage_future_get(co, STAGE_FOREVER, &who);
    printf("the coroutine returned \"%s\"\n", (const char *)who);

    stage_future_unref(co);
    stage_future_unref(th);
    stage_loop_free(stage_loop_current());
    return 0;
}
