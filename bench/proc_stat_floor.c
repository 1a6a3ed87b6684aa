/*
 * The floor under the processes collector: what the kernel costs to read every
 * /proc/<pid>/stat, without any parsing, two ways. Starts N sleeping children (default
 * 2000), then for 8 rounds, 100 ms apart:
 *   - open/read/close: getdents of /proc, then openat + read + close of each <pid>/stat;
 *   - kept open: getdents of /proc, then one pread of each <pid>/stat opened before.
 * Prints each round's times, and the kernel memory (unreclaimable slab) the open files
 * hold once read. Kills the children at the end.
 *
 *   cc -O2 -o /tmp/proc_stat_floor bench/proc_stat_floor.c && /tmp/proc_stat_floor 2000
 *
 * docs/performance.md compares `cargo bench -p lookout --bench processes` with it.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX 8000

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static long slab_kb(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[256];
  long v = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "SUnreclaim:", 11)) v = atol(line + 11);
  if (f) fclose(f);
  return v;
}

/* The pids under /proc, into pids; returns how many. */
static int list(int *pids) {
  int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
  char buf[32768];
  long got;
  while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
    for (long off = 0; off < got;) {
      unsigned short reclen = *(unsigned short *)(buf + off + 16);
      char *name = buf + off + 19;
      if (name[0] >= '0' && name[0] <= '9' && n < MAX) pids[n++] = atoi(name);
      off += reclen;
    }
  close(fd);
  return n;
}

int main(int argc, char **argv) {
  int children = argc > 1 ? atoi(argv[1]) : 2000;
  if (children > MAX / 2) children = MAX / 2;
  struct rlimit rl = {2 * MAX, 2 * MAX};
  setrlimit(RLIMIT_NOFILE, &rl);
  static pid_t kids[MAX];
  for (int i = 0; i < children; i++) {
    pid_t p = fork();
    if (p == 0) { pause(); _exit(0); }
    kids[i] = p;
  }
  usleep(300000);
  static int pids[MAX], fds[MAX];
  char buf[4096], path[64];
  int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (int round = 0; round < 8; round++) {
    double t0 = now();
    int n = list(pids), read_ok = 0;
    double t1 = now();
    for (int i = 0; i < n; i++) {
      snprintf(path, sizeof path, "%d/stat", pids[i]);
      int f = openat(dir, path, O_RDONLY | O_CLOEXEC);
      if (f < 0) continue;
      if (read(f, buf, sizeof buf) > 0) read_ok++;
      close(f);
    }
    printf("open/read/close: %d processes, %.2f ms (listing %.2f ms)\n", read_ok,
           (now() - t0) * 1e3, (t1 - t0) * 1e3);
    usleep(100000);
  }
  int n = list(pids);
  long slab0 = slab_kb();
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%d/stat", pids[i]);
    fds[i] = openat(dir, path, O_RDONLY | O_CLOEXEC);
    if (fds[i] >= 0) pread(fds[i], buf, sizeof buf, 0);
  }
  printf("%d stat files open and read once: unreclaimable slab +%ld KiB\n", n, slab_kb() - slab0);
  for (int round = 0; round < 8; round++) {
    double t0 = now();
    int m = list(pids), read_ok = 0;
    double t1 = now();
    for (int i = 0; i < n; i++)
      if (fds[i] >= 0 && pread(fds[i], buf, sizeof buf, 0) > 0) read_ok++;
    printf("kept open: %d processes, %.2f ms (listing %.2f ms of %d)\n", read_ok,
           (now() - t0) * 1e3, (t1 - t0) * 1e3, m);
    usleep(100000);
  }
  for (int i = 0; i < children; i++) kill(kids[i], SIGKILL);
  while (wait(NULL) > 0) {}
  return 0;
}
