/*
 * ready.h - readiness probes of the objects without a descriptor, for
 * ipc.poll (csrc/poll.c).  Each takes an open handle of its own class
 * (poll.c dispatches on h->cls->kind) and answers, without blocking and
 * without changing the object, 1 when the call that poll stands for would
 * not block now (a message to receive, a token to take, a lock to take;
 * also when the object is in error: the call then reports it), else 0.
 * Level-triggered and only a hint, like poll(2): another process may take
 * what was there first.
 */
#ifndef LIPC_READY_H
#define LIPC_READY_H

#include "core.h"

/* ring.c: a message is there, or every producer closed (end of stream). */
int lipc_ring_ready(lipc_handle *h);
/* sem.c: a POSIX or unnamed semaphore's value is > 0. */
int lipc_sem_ready(lipc_handle *h);
/* sync.c: a mutex is unlocked (or its owner died). */
int lipc_mutex_ready(lipc_handle *h);
/* msg.c: a System V queue holds a message (msg_qnum > 0). */
int lipc_msg_ready(lipc_handle *h);

#endif
