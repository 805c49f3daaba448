/* SPDX-License-Identifier: MIT */
/*
 * asyncio-tutorial.md, cell 16: a subprocess that prints the current date,
 * read back through a pipe, then reaped.
 *
 * Python runs `sys.executable -c code`: the running interpreter, told to
 * print datetime.datetime.now().  Here the running program plays the
 * interpreter: started as `<this program> -c print-date` it prints the
 * date as Python does, and exits.  get_date is the coroutine: it spawns
 * that child with its stdout piped (asyncio.create_subprocess_exec),
 * reads one line (proc.stdout.readline()), strips it, and waits for the
 * child to exit (proc.wait()).  asyncio.run is stage_run.
 *
 * The seed only assigns `date`; this program prints it, as print(date)
 * would:
 *
 *   2023-12-05 14:45:57.716696
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* async def get_date() */
static void *get_date(void *arg)
{
    const char *executable = arg; /* sys.executable */
    char *argv[] = {(char *)executable, "-c", "print-date", NULL};
    stage_proc *proc;
    char *data;
    size_t len;

    /* Create the subprocess; redirect the standard output into a pipe. */
    int err = stage_proc_spawn(executable, argv, NULL, STAGE_PROC_STDOUT,
                               &proc);
    if (err)
        return stage_task_fail(err, "create_subprocess_exec");

    /* Read one line of output. */
    stage_reader *out = stage_reader_new(stage_proc_fd(proc, 1), 0, 0);
    if (!out)
        err = errno;
    else
        err = stage_reader_line(out, &data, &len, STAGE_FOREVER);
    char *line = NULL;
    if (!err && data) {
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == ' '))
            len--; /* .rstrip() */
        line = strndup(data, len);
    }
    stage_reader_free(out);

    /* Wait for the subprocess exit. */
    int status;
    if (!err)
        err = stage_proc_wait(proc, STAGE_FOREVER, &status);
    stage_proc_free(proc);
    if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        err = ECHILD;
    if (err || !line) {
        free(line);
        return stage_task_fail(err ? err : EIO, "get_date");
    }
    return line;
}

int main(int argc, char **argv)
{
    /* The child: python -c 'import datetime; print(datetime.datetime.now())' */
    if (argc == 3 && strcmp(argv[1], "-c") == 0) {
        char now[27];
        puts(seed_datetime_now(now));
        return 0;
    }

    void *date;
    int err = stage_run(get_date, argv[0], free, &date); /* asyncio.run */
    if (err) {
        fprintf(stderr, "get_date: %s\n", strerror(err));
        return 1;
    }
    printf("%s\n", (char *)date);
    free(date);
    stage_loop_free(stage_loop_current());
    return 0;
}
