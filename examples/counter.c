/* A named gen_server that counts calls; the README's gen_server example. */
#include <hive.h>
#include <stdio.h>

static void handle_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    int *count = state;
    ++*count;
    hive_reply(from, 0, count, sizeof *count);      /* or keep `from` and reply later */
}

static const hive_gen_server counter = { .handle_call = handle_call };

static void main_proc(void *arg)
{
    (void)arg;
    static int zero;
    hive_pid srv;
    int rc = hive_gs_start(&counter, &zero, &(hive_gs_opts){ .name = "counter" }, &srv);
    if (rc) {
        fprintf(stderr, "start: %s\n", hive_strerror(rc));
        return;
    }
    for (int i = 0; i < 3; i++) {
        hive_msg *reply;
        rc = hive_call_name("counter", 1, NULL, 0, &reply, 5000);
        if (rc) {
            fprintf(stderr, "call: %s\n", hive_strerror(rc));
            return;
        }
        printf("count = %d\n", *(int *)reply->data);
        hive_msg_free(reply);
    }
    hive_gs_stop(srv, HIVE_NORMAL, 5000);
}

int main(void)
{
    hive_config cfg;
    hive_config_default(&cfg);
    if (hive_config_from_env(&cfg))
        return 2;
    int rc = hive_main(&cfg, main_proc, NULL);
    return rc != 0;
}
