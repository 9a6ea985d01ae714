/*
 * listener.h - the webhook listener: HTTP/1.1 on the daemon's loop,
 * parsed by llhttp, responding to each provider only after its events are
 * committed.
 */
#ifndef OUTBOXD_LISTENER_H
#define OUTBOXD_LISTENER_H

#include "daemon.h"

/* Starts listening when config enables webhooks. Returns 0, or -1 after
 * logging why (the address cannot be bound, a webhook key is wrong). */
int listener_start(daemon_state *d);

/* Responds to the request of a finished JOB_EVENTS job and frees the
 * job. */
void listener_events_done(daemon_state *d, worker_job *job);

/* Responds to the SNS request of a JOB_SNS_SUBSCRIPTION job that has come
 * back from the store thread, and frees both. */
void listener_subscription_done(daemon_state *d, worker_job *job);

/* Closes the listening socket and every connection whose request is not
 * in the store thread; those get their response when their jobs return. */
void listener_stop(daemon_state *d);

/* Frees the listener once the loop has closed every handle. */
void listener_free(daemon_state *d);

#endif /* OUTBOXD_LISTENER_H */
