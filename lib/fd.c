/* SPDX-License-Identifier: MIT */
/*
 * fd.c - fd readiness waits, the poll set, and the wake-up fd.
 *
 * The loop's poll set is an array of pollfd with a parallel array of the
 * waiter behind each slot.  Slot 0 is the wake-up fd, created the first time
 * the loop needs poll(2) at all (a loop that never waits for an fd sleeps on
 * its condition variable and owns no fd).  Removing a slot moves the last
 * one into the hole, so adding and removing are O(1).
 *
 *   pfds: [ wake | fd a | fd b | fd c ]
 *   pws:  [ NULL |  w1  |  w2  |  w3  ]     w->pfd == its slot
 *
 * The wake-up fd is an eventfd where the system has one, else a pipe.
 * Other threads write to it only when the owner sleeps in poll (loop->sleep
 * says so, under loop->lock), and only once per sleep.
 */
#include "common-int.h"
#include "loop-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef HAVE_SYS_EVENTFD_H
#include <sys/eventfd.h>
#endif

static int wakefd_open(stage_loop *loop)
{
#ifdef HAVE_SYS_EVENTFD_H
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return errno;
    loop->wake_rd = loop->wake_wr = fd;
#else
    int p[2];
#ifdef HAVE_PIPE2
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return errno;
#else
    if (pipe(p) != 0)
        return errno;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
#endif
    loop->wake_rd = p[0];
    loop->wake_wr = p[1];
#endif
    return 0;
}

static int grow(stage_loop *loop)
{
    if (loop->npfd < loop->cappfd)
        return 0;
    size_t cap = loop->cappfd ? 2 * loop->cappfd : 16;
    struct pollfd *p = realloc(loop->pfds, cap * sizeof *p);
    if (!p)
        return ENOMEM;
    loop->pfds = p;
    stage__waiter **w = realloc(loop->pws, cap * sizeof *w);
    if (!w)
        return ENOMEM;
    loop->pws = w;
    loop->cappfd = cap;
    return 0;
}

/* Make sure slot 0 holds the wake-up fd. */
static int ensure_wakefd(stage_loop *loop)
{
    if (loop->wake_rd >= 0)
        return 0;
    int err = grow(loop);
    if (err)
        return err;
    err = wakefd_open(loop);
    if (err)
        return err;
    stage__assert(loop->npfd == 0);
    loop->pfds[0].fd = loop->wake_rd;
    loop->pfds[0].events = POLLIN;
    loop->pfds[0].revents = 0;
    loop->pws[0] = NULL;
    loop->npfd = 1;
    return 0;
}

/* poll(2) events for a STAGE_FD_* mask, and back.  An error or hang-up is
 * reported as every requested direction, so the caller's read or write
 * meets the condition; POLLNVAL gives 0, which callers turn into EBADF. */
static short to_poll(unsigned int events)
{
    return (short)(((events & STAGE_FD_READ) ? POLLIN : 0) |
                   ((events & STAGE_FD_WRITE) ? POLLOUT : 0));
}

static unsigned int from_poll(short re, short ev)
{
    unsigned int r = 0;
    if (re & POLLNVAL)
        return 0;
    if (re & (POLLIN | POLLPRI))
        r |= STAGE_FD_READ;
    if (re & POLLOUT)
        r |= STAGE_FD_WRITE;
    if (re & (POLLERR | POLLHUP))
        r |= ((ev & POLLIN) ? STAGE_FD_READ : 0) |
             ((ev & POLLOUT) ? STAGE_FD_WRITE : 0);
    return r;
}

static void remove_slot(stage_loop *loop, size_t i)
{
    stage__waiter *w = loop->pws[i];
    size_t last = --loop->npfd;
    if (i != last) {
        loop->pfds[i] = loop->pfds[last];
        loop->pws[i] = loop->pws[last];
        loop->pws[i]->pfd = i;
    }
    loop->nuser--;
    w->pfd = STAGE__NOSLOT;
}

void stage__loop_poke_fd(stage_loop *loop)
{
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(loop->wake_wr, &one, loop->wake_rd == loop->wake_wr ? 8 : 1);
    while (r < 0 && errno == EINTR);
    /* EAGAIN: already full of wake-ups, which is as good. */
}

static void drain_wakefd(stage_loop *loop)
{
    char buf[64];
    while (read(loop->wake_rd, buf, sizeof buf) > 0)
        ;
}

/* Poll once, until `until` (absolute ns; -1: no limit; 0 or past: do not
 * block), and decide the waiters whose fds are ready. */
void stage__loop_poll(stage_loop *loop, int64_t until)
{
    int n;
#ifdef HAVE_PPOLL
    struct timespec ts, *tsp = NULL;
    if (until >= 0) {
        int64_t d = until - stage_now();
        if (d < 0)
            d = 0;
        ts.tv_sec = (time_t)(d / 1000000000);
        ts.tv_nsec = (long)(d % 1000000000);
        tsp = &ts;
    }
    n = ppoll(loop->pfds, (nfds_t)loop->npfd, tsp, NULL);
#else
    int ms = -1;
    if (until >= 0) {
        int64_t d = until - stage_now();
        /* Round up: waking a little late is fine, early means spinning. */
        ms = d <= 0 ? 0 : d > INT32_MAX * INT64_C(1000000)
                              ? INT32_MAX
                              : (int)((d + 999999) / 1000000);
    }
    n = poll(loop->pfds, (nfds_t)loop->npfd, ms);
#endif
    if (n <= 0)
        return;
    if (loop->pfds[0].revents)
        drain_wakefd(loop);
    for (size_t i = loop->npfd; i-- > 1;) {
        short re = loop->pfds[i].revents;
        if (!re)
            continue;
        stage__waiter *w = loop->pws[i];
        unsigned int r = from_poll(re, loop->pfds[i].events);
        remove_slot(loop, i);
        w->revents = r;
        stage__waiter_wake(w, STAGE__SIGNALLED);
    }
}

/* The poll set goes with stage_loop_free; the wake-up fd only with the
 * last reference (stage__loop_close_wakefd), since a waker on another
 * thread may still write to it. */
void stage__loop_fd_fini(stage_loop *loop)
{
    stage__assert(loop->nuser == 0);
    free(loop->pfds);
    free(loop->pws);
    loop->pfds = NULL;
    loop->pws = NULL;
    loop->npfd = loop->cappfd = 0;
}

int stage_fd_wait(int fd, unsigned int events, double timeout,
                  unsigned int *revents)
{
    int64_t deadline;
    if (events == 0 || (events & ~(STAGE_FD_READ | STAGE_FD_WRITE)) ||
        stage__deadline(timeout, &deadline))
        return EINVAL;
    if (fd < 0)
        return EBADF;
    if (timeout == 0) {
        /* Do not block: one look, no waiter, no loop. */
        if (stage_task_cancelled())
            return ECANCELED;
        struct pollfd p = {.fd = fd, .events = to_poll(events)};
        int n;
        do
            n = poll(&p, 1, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return errno;
        if (n == 0)
            return ETIMEDOUT;
        unsigned int r = from_poll(p.revents, p.events);
        if (r == 0)
            return EBADF;
        if (revents)
            *revents = r;
        return 0;
    }
    stage__waiter w;
    int err = stage__waiter_init_for(&w, STAGE__FOR_FD, NULL, fd, events);
    if (err)
        return err;
    stage_loop *loop = w.loop;
    err = ensure_wakefd(loop);
    if (!err)
        err = grow(loop);
    if (err) {
        stage__waiter_done(&w);
        return err;
    }
    size_t i = loop->npfd++;
    loop->nuser++;
    loop->pfds[i].fd = fd;
    loop->pfds[i].events = to_poll(events);
    loop->pfds[i].revents = 0;
    loop->pws[i] = &w;
    w.pfd = i;
    err = stage__waiter_park(&w, deadline);
    if (w.pfd != STAGE__NOSLOT)
        remove_slot(loop, w.pfd);
    stage__waiter_done(&w);
    if (!err && w.revents == 0)
        err = EBADF;
    if (!err && revents)
        *revents = w.revents;
    return err;
}

void stage__loop_close_wakefd(stage_loop *loop)
{
    if (loop->wake_rd >= 0) {
        close(loop->wake_rd);
        if (loop->wake_wr != loop->wake_rd)
            close(loop->wake_wr);
    }
    loop->wake_rd = loop->wake_wr = -1;
}
