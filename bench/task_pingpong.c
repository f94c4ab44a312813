/*
 * task_pingpong.c - raw C baseline of bench/task_pingpong.lua: round trip
 * through two eventfds between a parent and its forked child (the parent
 * adds 1 to "ping", the child takes it and adds 1 to "pong", the parent
 * takes that); bench/task_pingpong.lua does it from a task in ipc.loop (and
 * blocking, for the ratio task/blocking).  The program is
 * bench/eventfd_pingpong.c's, reporting under the key "task".
 */
#define PP_KEY "task"
#define PP_TARGET NULL
#include "eventfd_pingpong.c"
