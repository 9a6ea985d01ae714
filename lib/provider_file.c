/* Placeholder until the file provider is written. */
#include "provider.h"

const outbox_provider_ops outbox__file_ops = {.type = "file"};
