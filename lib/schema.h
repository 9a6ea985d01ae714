/*
 * schema.h - the SQL migrations compiled into liboutbox from sql/.
 */
#ifndef OUTBOX_SCHEMA_H
#define OUTBOX_SCHEMA_H

#include <stddef.h>

typedef struct outbox_migration {
    int version;          /* PRAGMA user_version after this migration */
    const char *name;     /* file name in sql/ */
    const char *sql;
} outbox_migration;

extern const outbox_migration outbox_migrations[];
extern const size_t outbox_migration_count;

#endif /* OUTBOX_SCHEMA_H */
