/* Two processes bounce a counter; the main process waits for the result. */
#include <hive.h>
#include <stdio.h>

enum { TAG_PING = 1, TAG_DONE = 2 };

static void ponger(void *arg)
{
    (void)arg;
    for (;;) {
        hive_msg *m;
        if (hive_receive(&m, HIVE_INFINITY) != 0)
            return;
        int n = *(int *)m->data;
        hive_pid from = m->from;
        hive_msg_free(m);
        if (n == 0)
            return;
        hive_send(from, TAG_PING, &n, sizeof n);
    }
}

static void main_proc(void *arg)
{
    int rounds = *(int *)arg;
    hive_pid pong;
    hive_spawn(ponger, NULL, &pong);
    for (int i = rounds; i > 0; i--) {
        hive_send(pong, TAG_PING, &i, sizeof i);
        hive_msg *m;
        hive_receive(&m, HIVE_INFINITY);
        hive_msg_free(m);
    }
    int zero = 0;
    hive_send(pong, TAG_PING, &zero, sizeof zero);
    printf("%d round trips done\n", rounds);
}

int main(void)
{
    hive_config cfg;
    hive_config_default(&cfg);
    if (hive_config_from_env(&cfg))
        return 2;
    int rounds = 100000;
    int rc = hive_main(&cfg, main_proc, &rounds);
    if (rc)
        fprintf(stderr, "hive_main: %s\n", hive_strerror(rc));
    return rc ? 1 : 0;
}
