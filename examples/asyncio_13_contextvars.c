/* SPDX-License-Identifier: MIT */
/*
 * asyncio-tutorial.md, cells 13-15: "Context Variables (contextvars)" -
 * a copied context (ctx.run), per-task isolation, and the global-variable
 * contrast.
 *
 * contextvars.ContextVar is a stage_local key: a value per task.
 *
 * Cell 13: ctx.run(main) is stage_local_run(main): main runs at once in a
 * copy of the current context.  In Python the copy is an object, ctx, that
 * outlives the run; here it ends with the run, so ctx[var] is what the
 * copy holds: stage_local_get inside main, and after the run the value
 * main leaves in it, which main returns.  Prints spam, spam, spam, ham,
 * ham, ham, spam.
 *
 * Cell 14: two tasks (coroutines of the main thread's loop) set the same
 * variable; each keeps its own value, even across task_one's sleep (1 s)
 * while task_two runs.
 *
 * Cell 15: the same with a global variable: task_two overwrites task_one's
 * value during its sleep (9 s).
 *
 * asyncio.gather = waiting for each task in turn.  About 10 s in all.
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>

static const char *str(void *p) { return (const char *)p; }

/* ---- Cell 13 ---- */

static stage_local *var;

static void *ctx_main(void *arg)
{
    (void)arg;
    /* 'var' was set to 'spam' before calling 'ctx.run(main)', so: */
    printf("%s\n", str(stage_local_get(var))); /* 'spam' */
    printf("%s\n", str(stage_local_get(var))); /* ctx[var]: 'spam' */

    stage_local_set(var, "ham");

    /* Now, after setting 'var' to 'ham': */
    printf("%s\n", str(stage_local_get(var))); /* 'ham' */
    printf("%s\n", str(stage_local_get(var))); /* ctx[var]: 'ham' */
    return stage_local_get(var);               /* what ctx holds now */
}

static void cell13(void)
{
    var = stage_local_new("var", NULL);
    stage_local_set(var, "spam");
    printf("%s\n", str(stage_local_get(var))); /* 'spam' */

    /* Any changes that 'main' makes to 'var' are contained in the copy. */
    void *ctx_var = NULL;
    stage_local_run(ctx_main, NULL, &ctx_var);

    /* main ran in the copy, so its changes are contained in it: */
    printf("%s\n", str(ctx_var)); /* ctx[var]: 'ham' */

    /* However, outside of it, 'var' is still set to 'spam': */
    printf("%s\n", str(stage_local_get(var))); /* 'spam' */
    stage_local_free(var);
}

/* ---- Cell 14 ---- */

static stage_local *my_var;

static void *task_one(void *arg)
{
    (void)arg;
    stage_local_set(my_var, "Value from task_one");
    printf("Task One: %s\n", str(stage_local_get(my_var)));
    stage_sleep(seed_time(1));
    /* Still task_one's value */
    printf("Task One (after sleep): %s\n", str(stage_local_get(my_var)));
    return NULL;
}

static void *task_two(void *arg)
{
    (void)arg;
    stage_local_set(my_var, "Value from task_two");
    printf("Task Two: %s\n", str(stage_local_get(my_var)));
    return NULL;
}

/* asyncio.create_task twice, then asyncio.gather */
static void *run_both(stage_task_fn one, stage_task_fn two)
{
    stage_future *task1, *task2;
    stage_coro_spawn(NULL, one, NULL, NULL, 0, &task1);
    stage_coro_spawn(NULL, two, NULL, NULL, 0, &task2);
    stage_future_wait(task1, STAGE_FOREVER);
    stage_future_wait(task2, STAGE_FOREVER);
    stage_future_unref(task1);
    stage_future_unref(task2);
    return NULL;
}

static void *main14(void *arg)
{
    (void)arg;
    return run_both(task_one, task_two);
}

/* ---- Cell 15 ---- */

static const char *global_var = "new_val";

static void *global_one(void *arg)
{
    (void)arg;
    global_var = "Value from task_one";
    printf("Task One: %s\n", global_var);
    stage_sleep(seed_time(9));
    /* Not task_one's value any more */
    printf("Task One (after sleep): %s\n", global_var);
    return NULL;
}

static void *global_two(void *arg)
{
    (void)arg;
    global_var = "Value from task_two";
    printf("Task Two: %s\n", global_var);
    return NULL;
}

static void *main15(void *arg)
{
    (void)arg;
    return run_both(global_one, global_two);
}

int main(void)
{
    cell13();

    my_var = stage_local_new("my_var", NULL);
    stage_run(main14, NULL, NULL, NULL); /* asyncio.run(main()) */
    stage_local_free(my_var);

    stage_run(main15, NULL, NULL, NULL);

    stage_loop_free(stage_loop_current());
    return 0;
}
