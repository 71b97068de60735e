/*
 * hg_execution.c: an execution's object and the master's lists of them.
 *
 * It owns an execution's memory (created, freed with its payload and
 * unique key), its membership of the master's lists (every live one; the
 * primed and committing lists on the way to a worker) and the table of
 * unique keys. It never decides anything about an execution: where it
 * goes next is hg_dispatch.c's, how it ended hg_outcome.c's, and what the
 * store says of it hg_journal.c's.
 */

#include "hg_core.h"

#include "hg_execution.h"
#include "hg_job.h"
#include "hg_log.h"
#include "hg_uuid.h"

static hg_exec_link_t *
hg_exec_link(const hg_exec_list_t *list, hg_execution_t *exec)
{
    return (hg_exec_link_t *) ((char *) exec + list->link);
}

void
hg_exec_list_init(hg_exec_list_t *list, size_t link)
{
    list->head = list->tail = NULL;
    list->count = 0;
    list->link = link;
}

void
hg_exec_list_append(hg_exec_list_t *list, hg_execution_t *exec)
{
    hg_exec_link_t *link = hg_exec_link(list, exec);

    link->prev = list->tail;
    link->next = NULL;
    if (list->tail != NULL) {
        hg_exec_link(list, list->tail)->next = exec;
    } else {
        list->head = exec;
    }
    list->tail = exec;
    list->count++;
}

void
hg_exec_list_remove(hg_exec_list_t *list, hg_execution_t *exec)
{
    hg_exec_link_t *link = hg_exec_link(list, exec);

    if (link->prev != NULL) {
        hg_exec_link(list, link->prev)->next = link->next;
    } else {
        list->head = link->next;
    }
    if (link->next != NULL) {
        hg_exec_link(list, link->next)->prev = link->prev;
    } else {
        list->tail = link->prev;
    }
    list->count--;
    link->prev = link->next = NULL;
}

void
hg_exec_start_join(hg_exec_list_t *list, hg_execution_t *exec)
{
    exec->start_list = list;
    hg_exec_list_append(list, exec);
}

void
hg_exec_start_push(hg_exec_list_t *list, hg_execution_t *exec)
{
    hg_exec_link_t *link = hg_exec_link(list, exec);

    exec->start_list = list;
    link->prev = NULL;
    link->next = list->head;
    if (list->head != NULL) {
        hg_exec_link(list, list->head)->prev = exec;
    } else {
        list->tail = exec;
    }
    list->head = exec;
    list->count++;
}

void
hg_exec_start_leave(hg_execution_t *exec)
{
    if (exec->start_list != NULL) {
        hg_exec_list_remove(exec->start_list, exec);
        exec->start_list = NULL;
    }
}

hg_execution_t *
hg_execution_new(hg_master_t *m, hg_job_t *job, int64_t scheduled_for_ms,
                 unsigned attempt, const char *trigger)
{
    hg_execution_t *exec = calloc(1, sizeof(*exec));

    if (exec == NULL) {
        hg_log_event(HG_LOG_ERROR, "error", job->id, NULL, NULL, 0,
                     "out of memory: execution not created");
        return NULL;
    }
    hg_uuid_v7(exec->id);
    memcpy(exec->run_id, exec->id, sizeof(exec->id));
    exec->job = job;
    job->refs++;
    exec->scheduled_for_ms = scheduled_for_ms;
    exec->due_ns = scheduled_for_ms * HG_NSEC_PER_MSEC;
    exec->attempt = attempt;
    snprintf(exec->trigger, sizeof(exec->trigger), "%s", trigger);
    exec->priority = job->policy.priority;
    exec->status = HG_EXEC_QUEUED;
    hg_heap_node_init(&exec->ready);
    hg_timer_init(&exec->timer, NULL, exec);
    hg_exec_list_append(&m->executions, exec);
    return exec;
}

void
hg_execution_release_key(hg_master_t *m, hg_execution_t *exec)
{
    if (exec->unique_key != NULL
        && hg_map_get(&m->unique_keys, exec->unique_key) == exec)
    {
        hg_map_remove(&m->unique_keys, exec->unique_key);
    }
}

void
hg_execution_free(hg_master_t *m, hg_execution_t *exec)
{
    hg_timer_cancel(&exec->timer);
    if (hg_heap_node_queued(&exec->ready)) {
        hg_heap_remove(&m->ready, &exec->ready);
    }
    hg_exec_start_leave(exec);
    hg_execution_release_key(m, exec);
    hg_exec_list_remove(&m->executions, exec);
    free(exec->unique_key);
    free(exec->payload);
    hg_job_release(exec->job);
    free(exec);
}

int
hg_execution_set_payload(hg_execution_t *exec, const void *payload,
                         size_t len)
{
    if (len == 0) {
        return HG_OK;
    }
    exec->payload = malloc(len);
    if (exec->payload == NULL) {
        return HG_ERROR;
    }
    memcpy(exec->payload, payload, len);
    exec->payload_len = len;
    return HG_OK;
}
