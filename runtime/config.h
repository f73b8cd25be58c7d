/* Configuration checks shared by hive_main (rt.c) and config.c. */
#ifndef HIVE_CONFIG_H
#define HIVE_CONFIG_H

#include <hive.h>

/* 0, or -EINVAL with a message naming the field. */
int config_validate(const hive_config *c);

#endif
