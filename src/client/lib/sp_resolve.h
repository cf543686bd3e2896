/*
 * sp_resolve.h - host name resolution that the background thread can wait
 * for with a deadline, and abandon.
 *
 * Why. getaddrinfo(3) blocks for as long as the resolver likes (a silent
 * name server costs timeout x attempts x servers, easily 30 s or more) and
 * cannot be interrupted. Called on the handle's thread, it made init wait
 * past every timeout and deinit wait for a DNS answer. getaddrinfo_a(3)
 * would need -lanl on older glibc (and cannot cancel a lookup in progress
 * either), so a name is resolved on a short-lived detached thread of its
 * own, and the handle's thread polls an eventfd that the resolver writes
 * when it is done.
 *
 * Ownership. A job is shared by two owners, the handle (which may give up
 * waiting at a deadline or at deinit) and the resolver thread (which cannot
 * stop getaddrinfo); refs counts them under the job's mutex and whoever
 * leaves last frees the job, its descriptor and any result. The resolver
 * writes the eventfd while holding the mutex, so the descriptor is open as
 * long as the handle may poll it. A process that exits while a lookup is
 * stuck leaves that thread behind with its job still reachable from it.
 *
 * Addresses (numeric hosts) never reach a thread: sp_resolve_numeric
 * handles them on the spot, as getaddrinfo with AI_NUMERICHOST never
 * blocks. See sp_buf.h for why this is a header of static functions.
 */
#ifndef SP_RESOLVE_H
#define SP_RESOLVE_H

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_io.h"

struct sp_resolve {
    pthread_mutex_t mu;
    unsigned refs;             /* owners left: the handle and the thread  */
    int done;                  /* rc and list are set                     */
    int rc;                    /* getaddrinfo's result                    */
    int sys_errno;             /* errno when rc is EAI_SYSTEM             */
    struct addrinfo *list;     /* the result, until the handle takes it   */
    int efd;                   /* readable once done (never blocks)       */
    char *host;
    char port[8];
};

static void sp_resolve_hints(struct addrinfo *hints, int flags)
{
    memset(hints, 0, sizeof *hints);
    hints->ai_family = AF_UNSPEC;
    hints->ai_socktype = SOCK_STREAM;
    hints->ai_protocol = IPPROTO_TCP;
    hints->ai_flags = AI_NUMERICSERV | flags;
}

/* Resolves host if it is a numeric address. Returns 0 with *list set, or
 * EAI_NONAME when host is a name (the caller starts a job), or another
 * EAI_ code. Never blocks. */
static int sp_resolve_numeric(const char *host, const char *port, struct addrinfo **list)
{
    struct addrinfo hints;
    sp_resolve_hints(&hints, AI_NUMERICHOST);
    return getaddrinfo(host, port, &hints, list);
}

static void sp_resolve_free(struct sp_resolve *r)
{
    if (r->list != NULL)
        freeaddrinfo(r->list);
    sp_io_close(r->efd);
    pthread_mutex_destroy(&r->mu);
    free(r->host);
    free(r);
}

/* One owner leaves; the last one frees. */
static void sp_resolve_release(struct sp_resolve *r)
{
    pthread_mutex_lock(&r->mu);
    unsigned left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left == 0)
        sp_resolve_free(r);
}

static void *sp_resolve_main(void *arg)
{
    struct sp_resolve *r = arg;
    struct addrinfo hints;
    sp_resolve_hints(&hints, 0);
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(r->host, r->port, &hints, &list);
    int e = errno;
    pthread_mutex_lock(&r->mu);
    r->rc = rc;
    r->sys_errno = e;
    r->list = rc == 0 ? list : NULL;
    r->done = 1;
    if (r->refs > 1)
        sp_io_wake(r->efd); /* under mu: the handle cannot close it now */
    pthread_mutex_unlock(&r->mu);
    sp_resolve_release(r);
    return NULL;
}

/* Starts resolving host:port on a detached thread. Returns the job (poll
 * its efd, then sp_resolve_take) or NULL when out of memory, descriptors
 * or threads (*err is an errno value). */
static struct sp_resolve *sp_resolve_start(const char *host, const char *port, int *err)
{
    struct sp_resolve *r = calloc(1, sizeof *r);
    if (r == NULL) {
        *err = ENOMEM;
        return NULL;
    }
    r->efd = -1;
    r->host = strdup(host);
    snprintf(r->port, sizeof r->port, "%s", port);
    if (r->host == NULL || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->host);
        free(r);
        *err = ENOMEM;
        return NULL;
    }
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd == -1) {
        *err = errno;
        sp_resolve_free(r);
        return NULL;
    }
    r->refs = 2;
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        if (rc == 0)
            rc = pthread_create(&t, &attr, sp_resolve_main, r);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        *err = rc;
        sp_resolve_free(r);
        return NULL;
    }
    return r;
}

/* The handle's side once efd is readable: returns 1 with the result
 * (*list owned by the caller when rc is 0) and leaves the job, or 0 when
 * the lookup is not done (a spurious wake-up). */
static int sp_resolve_take(struct sp_resolve *r, int *rc, int *sys_errno, struct addrinfo **list)
{
    pthread_mutex_lock(&r->mu);
    int done = r->done;
    if (done) {
        *rc = r->rc;
        *sys_errno = r->sys_errno;
        *list = r->list;
        r->list = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (done)
        sp_resolve_release(r);
    return done;
}

#endif /* SP_RESOLVE_H */
