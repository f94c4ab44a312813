/*
 * task_echo.c - raw C baseline of bench/task_echo.lua: an echo server over
 * Unix stream sockets and 100 clients in one process, one epoll loop,
 * nonblocking descriptors and a state per connection (what the Lua tasks
 * write as sequential code).  Each client sends 64-byte requests one after
 * another, reading each echo before the next.  Prints requests per second
 * (the best of 3 runs after a warm-up run).
 *   BENCH_ECHO_CLIENTS (100) clients, BENCH_ECHO_REQUESTS (200) each.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

typedef struct conn { int fd, client, got, done; } conn;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

/* One run: seconds for clients * requests requests. */
static double run(int n, int clients, int requests) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int len = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "c-bench-echo-%d-%d", (int)getpid(), n);
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
  int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (srv < 0 || bind(srv, (struct sockaddr *)&sa, salen) != 0 || listen(srv, clients) != 0) die("listen");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  conn *cs = calloc((size_t)clients * 2 + 1, sizeof *cs);
  char msg[MSG], buf[MSG];
  memset(msg, 'x', MSG);
  double t0 = now_s();
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, srv, &ev) != 0) die("epoll_ctl");
  for (int i = 0; i < clients; i++) {
    conn *c = &cs[i];
    c->client = 1;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, salen) != 0) die("connect");
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
    if (send(c->fd, msg, MSG, MSG_NOSIGNAL) != MSG) die("send");
  }
  int accepted = 0, finished = 0;
  struct epoll_event evs[256];
  while (finished < clients) {
    int k = epoll_wait(ep, evs, 256, -1);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) die("epoll_wait");
    for (int i = 0; i < k; i++) {
      conn *c = evs[i].data.ptr;
      if (c == NULL) {   /* the listener */
        int fd;
        while ((fd = accept4(srv, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
          conn *s = &cs[clients + accepted++];
          s->fd = fd;
          ev.data.ptr = s;
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
        }
        continue;
      }
      ssize_t r = recv(c->fd, buf, c->client ? (size_t)(MSG - c->got) : MSG, 0);
      if (r < 0 && errno == EAGAIN) continue;
      if (r < 0) die("recv");
      if (!c->client) {   /* the server's side of a connection */
        if (r == 0) { close(c->fd); continue; }
        if (send(c->fd, buf, (size_t)r, MSG_NOSIGNAL) != r) die("echo send");
        continue;
      }
      if (r == 0) die("server closed");
      c->got += (int)r;
      if (c->got < MSG) continue;
      c->got = 0;
      if (++c->done == requests) {
        close(c->fd);   /* also leaves the epoll set */
        finished++;
      } else if (send(c->fd, msg, MSG, MSG_NOSIGNAL) != MSG) {
        die("send");
      }
    }
  }
  /* the server side sees the clients' end of stream */
  while (accepted > 0) {
    int k = epoll_wait(ep, evs, 256, 1000);
    if (k <= 0) break;
    for (int i = 0; i < k; i++) {
      conn *c = evs[i].data.ptr;
      if (c == NULL) continue;
      if (recv(c->fd, buf, MSG, 0) == 0) { close(c->fd); accepted--; }
    }
  }
  double took = now_s() - t0;
  close(ep);
  close(srv);
  free(cs);
  return took;
}

int main(void) {
  const char *e = getenv("BENCH_ECHO_CLIENTS");
  int clients = e ? atoi(e) : 100;
  e = getenv("BENCH_ECHO_REQUESTS");
  int requests = e ? atoi(e) : 200;
  run(0, clients, requests);
  double best = 1e9;
  for (int n = 1; n <= 3; n++) {
    double t = run(n, clients, requests);
    if (t < best) best = t;
  }
  printf("metric task_echo_rps %.0f req/s higher\n", (double)clients * requests / best);
  return 0;
}
