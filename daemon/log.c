/*
 * log.c - placeholder
 */
