/* SPDX-License-Identifier: MIT */
/*
 * io.c - hybrid reads and writes on non-blocking fds, and a line reader.
 *
 * Every call here is "try the system call, wait with stage_fd_wait when it
 * says EAGAIN, try again", with one absolute deadline for the whole call so
 * that retries never extend it:
 *
 *     read(2) ---- data / EOF / error ----------------------> return
 *        | EAGAIN (or EINTR: try again at once)
 *     stage_fd_wait(fd, READ, time left) -- ETIMEDOUT, ECANCELED --> return
 *        | ready
 *        +--> read(2) again
 *
 * The system call comes first: when data is already there, a read costs one
 * read(2) and no poll(2).  stage_fd_wait polls the fd with the loop of the
 * calling coroutine (suspending only the coroutine) or with poll(2) on a
 * plain thread, so the calls are hybrid, with timeouts and cancellation for
 * free.
 *
 * The fds must be non-blocking: a read(2) on a blocking fd would stop the
 * whole thread with all its coroutines, and a timeout could not be kept.
 * We refuse a blocking fd with EINVAL rather than set O_NONBLOCK ourselves,
 * because the flag belongs to the open file description, which other
 * processes may share (a terminal's stdin shared with the shell: setting it
 * there breaks the shell).  Checking costs one fcntl(2) per stage_fd_read
 * or stage_fd_write call; a stage_reader checks once, when it is made.
 *
 * The reader keeps one buffer of max_line + 2 bytes, data in [start, end):
 *
 *     buf: [ consumed | line\n next li | free ... | NUL room ]
 *                     ^start           ^end
 *
 * A line handed out is NUL-terminated in place: the byte after it is saved
 * and put back at the next call.  Data is read into the buffer before it is
 * handed out, so a call cut short by its timeout or by cancellation leaves
 * everything it read in the buffer for the next call: nothing is lost.
 */
#include "common-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 0, or why fd cannot be used: EBADF (not open), EINVAL (blocking). */
static int fd_check(int fd)
{
    if (fd < 0)
        return EBADF;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return errno;
    return (fl & O_NONBLOCK) ? 0 : EINVAL;
}

/* The checks every call makes before its first system call, in order:
 * the timeout, the fd, then cancellation (as every blocking call). */
static int begin(int fd, double timeout, int64_t *deadline)
{
    if (stage__deadline(timeout, deadline))
        return EINVAL;
    int err = fd_check(fd);
    if (err)
        return err;
    return stage_task_cancelled() ? ECANCELED : 0;
}

/* Wait until fd is ready for `events`, or the deadline.  timeout == 0 asks
 * not to block at all: no poll(2), the EAGAIN already says "not ready". */
static int wait_ready(int fd, unsigned int events, double timeout,
                      int64_t deadline)
{
    if (timeout == 0)
        return ETIMEDOUT;
    return stage_fd_wait(fd, events, stage__time_left(deadline), NULL);
}

/* One read of at most size bytes, waiting for data; the core of
 * stage_fd_read and of the reader.  The caller checked the arguments. */
static int read_some(int fd, void *buf, size_t size, double timeout,
                     int64_t deadline, size_t *nread)
{
    for (;;) {
        ssize_t n = read(fd, buf, size);
        if (n >= 0) {
            *nread = (size_t)n;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno;
        int err = wait_ready(fd, STAGE_FD_READ, timeout, deadline);
        if (err)
            return err;
    }
}

int stage_fd_read(int fd, void *buf, size_t size, double timeout,
                  size_t *nread)
{
    int64_t deadline;
    if (nread)
        *nread = 0;
    if (!buf || size == 0 || !nread)
        return EINVAL;
    int err = begin(fd, timeout, &deadline);
    if (err)
        return err;
    return read_some(fd, buf, size, timeout, deadline, nread);
}

int stage_fd_write(int fd, const void *buf, size_t size, double timeout,
                   size_t *nwritten)
{
    int64_t deadline;
    size_t done = 0;
    if (nwritten)
        *nwritten = 0;
    if (!buf && size > 0)
        return EINVAL;
    int err = begin(fd, timeout, &deadline);
    if (err)
        return err;
    while (done < size) {
        ssize_t n = write(fd, (const char *)buf + done, size - done);
        if (n >= 0) {
            done += (size_t)n; /* a partial write: go on with the rest */
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            err = errno;
            break;
        }
        err = wait_ready(fd, STAGE_FD_WRITE, timeout, deadline);
        if (err)
            break;
    }
    if (nwritten)
        *nwritten = done;
    return err;
}

/* ---- The line reader ---------------------------------------------------- */

struct stage_reader {
    int fd;
    unsigned int flags; /* STAGE_READER_* */
    int busy;           /* a call is in progress: a second one gets EBUSY */
    char *buf;          /* cap bytes; data in [start, end) */
    size_t cap;         /* max_line + 2: the longest line, its '\n', NUL */
    size_t max_line;    /* longest line, not counting its '\n' */
    size_t start, end;
    size_t scan;        /* [start, scan) holds no '\n': not searched again */
    size_t lent;        /* length of the line handed out last, 0: none */
    char saved;         /* the byte its NUL overwrote */
};

stage_reader *stage_reader_new(int fd, size_t max_line, unsigned int flags)
{
    if (max_line == 0)
        max_line = STAGE_READER_LINE_MAX;
    int err = EINVAL;
    if ((flags & ~STAGE_READER_CLOSE) || max_line > SIZE_MAX / 2 ||
        (err = fd_check(fd)) != 0) {
        errno = err;
        return NULL;
    }
    stage_reader *r = calloc(1, sizeof *r);
    if (r)
        r->buf = malloc(max_line + 2);
    if (!r || !r->buf) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    r->fd = fd;
    r->flags = flags;
    r->max_line = max_line;
    r->cap = max_line + 2;
    return r;
}

void stage_reader_free(stage_reader *r)
{
    if (!r)
        return;
    if (r->flags & STAGE_READER_CLOSE)
        close(r->fd);
    free(r->buf);
    free(r);
}

/* Take back the line handed out by the previous call: it is consumed. */
static void give_back(stage_reader *r)
{
    if (!r->lent)
        return;
    r->start += r->lent;
    r->buf[r->start] = r->saved;
    r->lent = 0;
    if (r->start == r->end)
        r->start = r->end = r->scan = 0;
}

/* Hand out the len bytes at start as a NUL-terminated line. */
static void lend(stage_reader *r, size_t len, char **line, size_t *llen)
{
    char *p = r->buf + r->start;
    r->saved = p[len]; /* start + len <= end <= cap - 1: inside buf */
    p[len] = '\0';
    r->lent = len;
    *line = p;
    *llen = len;
}

static int reader_line(stage_reader *r, char **line, size_t *len,
                       double timeout, int64_t deadline)
{
    for (;;) {
        if (r->scan < r->start)
            r->scan = r->start;
        char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
        if (nl) {
            lend(r, (size_t)(nl - (r->buf + r->start)) + 1, line, len);
            return 0;
        }
        r->scan = r->end;
        /* max_line + 1 bytes and no '\n': the line is too long.  It stays
         * buffered; stage_reader_read takes it out. */
        if (r->end - r->start > r->max_line)
            return EMSGSIZE;
        if (r->end == r->cap - 1) { /* no room left at the end: compact */
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->scan -= r->start;
            r->start = 0;
        }
        size_t n;
        int err = read_some(r->fd, r->buf + r->end, r->cap - 1 - r->end,
                            timeout, deadline, &n);
        if (err)
            return err; /* what was read so far stays buffered */
        if (n == 0) { /* end of file: the last line may lack its '\n' */
            if (r->end > r->start) {
                lend(r, r->end - r->start, line, len);
                return 0;
            }
            return 0; /* *line NULL, *len 0 */
        }
        r->end += n;
    }
}

/* The checks of every reader call: the timeout, one call at a time, then
 * the line lent by the previous call is taken back (it is consumed even
 * if this call is cancelled), then cancellation. */
static int reader_begin(stage_reader *r, double timeout, int64_t *deadline)
{
    if (stage__deadline(timeout, deadline))
        return EINVAL;
    if (r->busy)
        return EBUSY;
    give_back(r);
    return stage_task_cancelled() ? ECANCELED : 0;
}

int stage_reader_line(stage_reader *r, char **line, size_t *len,
                      double timeout)
{
    int64_t deadline;
    if (line)
        *line = NULL;
    if (len)
        *len = 0;
    if (!r || !line || !len)
        return EINVAL;
    int err = reader_begin(r, timeout, &deadline);
    if (err)
        return err;
    r->busy = 1;
    err = reader_line(r, line, len, timeout, deadline);
    r->busy = 0;
    return err;
}

int stage_reader_read(stage_reader *r, void *buf, size_t size,
                      double timeout, size_t *nread)
{
    int64_t deadline;
    if (nread)
        *nread = 0;
    if (!r || !buf || size == 0 || !nread)
        return EINVAL;
    int err = reader_begin(r, timeout, &deadline);
    if (err)
        return err;
    if (r->end > r->start) { /* drain the buffer first */
        size_t n = r->end - r->start;
        if (n > size)
            n = size;
        memcpy(buf, r->buf + r->start, n);
        r->start += n;
        if (r->start == r->end)
            r->start = r->end = r->scan = 0;
        *nread = n;
        return 0;
    }
    r->busy = 1;
    err = read_some(r->fd, buf, size, timeout, deadline, nread);
    r->busy = 0;
    return err;
}
