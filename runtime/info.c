/*
 * hive_process_info: what Process.info/1 shows, from any thread.
 *
 * Links, monitors, the name and the stack size are read under the target's
 * lock, with its pid checked there: exact, and never mixed up with a later
 * process in the same slot. The message queue, whether the process holds a
 * stack, and trap_exit are owner-only fields. For the calling process they
 * are exact (its mailbox is drained first). For another process they are
 * read without synchronisation (owner_snapshot): a snapshot that can be
 * stale, and that does not count messages still in the mailbox, which only
 * the owner may walk. An exact count for another process needs the owner to
 * answer (a request handled in its drain, as ERTS handles process_info).
 */
#include <string.h>

#include "runtime/otp/gen_server.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/proc/registry.h"
#include "runtime/sched/sched.h"

/* registry.c */

struct owner_fields {
    uint32_t qlen;
    bool     has_stack;
    bool     trap_exit;
    bool     gen_server;
};

/* Plain loads of fields the owner writes without atomics. A racy read of a
 * statistic is the point here, so the thread sanitizer is told not to look;
 * nothing read is dereferenced. */
__attribute__((noinline, no_sanitize("thread")))
static void owner_snapshot(struct proc *p, struct owner_fields *o)
{
    o->qlen = *(volatile uint32_t *)&p->pq_len;
    o->has_stack = *(struct stack *volatile *)&p->stack != NULL ||
                   *(struct stack_arena *volatile *)&p->resv_arena != NULL;
    o->trap_exit = *(volatile bool *)&p->trap_exit;
    o->gen_server = *(void *volatile *)&p->gs != NULL;
}

static int status_of(uint32_t s)
{
    switch (s) {
    case PS_RUNNABLE: return HIVE_STATUS_RUNNABLE;
    case PS_RUNNING:  return HIVE_STATUS_RUNNING;
    case PS_WAITING:  return HIVE_STATUS_WAITING;
    case PS_EXITING:  return HIVE_STATUS_EXITING;
    default:          return 0;
    }
}

int hive_process_info(hive_pid pid, struct hive_process_info *info)
{
    if (!info || pid == HIVE_NOPID)
        return -EINVAL;
    if (!g_rt)
        return -EPERM;
    struct proc *p;
    int rc = proc_resolve(pid, &p);
    if (rc)
        return rc;
    memset(info, 0, sizeof *info);
    info->pid = pid;

    struct proc *self = cur_proc;
    bool is_self = self == p && atomic_load_explicit(&p->pid, memory_order_relaxed) == pid;
    size_t queued_bytes = 0;
    struct owner_fields o;
    if (is_self) {
        o.qlen = proc_queue_len(p);    /* drains the mailbox first */
        for (struct mnode *n = p->pq_head; n;
             n = (struct mnode *)atomic_load_explicit(&n->q.next, memory_order_relaxed))
            queued_bytes += n->size;
        o.has_stack = p->stack != NULL; /* running: never a reservation */
        o.trap_exit = p->trap_exit;
        o.gen_server = p->gs != NULL;
    }

    size_t stack_size, nlinks = 0, nmons = 0;
    proc_lock(p);
    if (atomic_load_explicit(&p->pid, memory_order_relaxed) != pid) {
        proc_unlock(p);
        return -ESRCH;
    }
    if (!is_self)
        owner_snapshot(p, &o);
    stack_size = p->stack_size ? p->stack_size : g_rt->cfg.stack_size;
    for (struct link *l = p->links; l; l = l->next) {
        if (info->links < HIVE_INFO_LINKS)
            info->link[info->links] = l->pid;
        info->links++;
        nlinks++;
    }
    for (struct mon *m = p->monitors; m; m = m->next) {
        if (!m->internal)
            info->monitors++;
        nmons++;
    }
    for (struct mon *m = p->monitored_by; m; m = m->next) {
        if (!m->internal)
            info->monitored_by++;
        nmons++;
    }
    info->status = status_of(atomic_load_explicit(&p->status, memory_order_relaxed));
    info->max_queue = atomic_load_explicit(&p->max_queue, memory_order_relaxed);
    info->messages_dropped = atomic_load_explicit(&p->dropped, memory_order_relaxed);
    proc_unlock(p);
    registry_name_of(p, pid, info->name, sizeof info->name);

    if (is_self)
        info->status = HIVE_STATUS_RUNNING;
    info->message_queue_len = o.qlen;
    info->trap_exit = o.trap_exit;
    info->gen_server = o.gen_server;
    if (!is_self)
        queued_bytes = (size_t)o.qlen * sizeof(struct mnode);
    info->memory = sizeof(struct proc) + (o.gen_server ? gs_context_bytes() : 0) +
                   nlinks * sizeof(struct link) + nmons * sizeof(struct mon) + queued_bytes +
                   (o.has_stack ? stack_size : 0);
    return 0;
}
