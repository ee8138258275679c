/* Small-file benchmark: create+write, stat, read, delete N files of SIZE bytes in DIR.
 * Prints one line: create_s stat_s read_s delete_s total_s */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DIR N SIZE\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int n = atoi(argv[2]);
  size_t size = (size_t)atol(argv[3]);
  char *buf = malloc(size), path[4096];
  memset(buf, 'x', size);
  double t[5];
  t[0] = now();
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/d%02d", dir, i % 100);
    if (i < 100) mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/d%02d/f%06d", dir, i % 100, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, buf, size) != (ssize_t)size) { perror(path); return 1; }
    close(fd);
  }
  t[1] = now();
  for (int i = 0; i < n; i++) {
    struct stat st;
    snprintf(path, sizeof path, "%s/d%02d/f%06d", dir, i % 100, i);
    if (stat(path, &st) != 0 || (size_t)st.st_size != size) { perror(path); return 1; }
  }
  t[2] = now();
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/d%02d/f%06d", dir, i % 100, i);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, buf, size) != (ssize_t)size) { perror(path); return 1; }
    close(fd);
  }
  t[3] = now();
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/d%02d/f%06d", dir, i % 100, i);
    if (unlink(path) != 0) { perror(path); return 1; }
  }
  for (int i = 0; i < 100 && i < n; i++) {
    snprintf(path, sizeof path, "%s/d%02d", dir, i);
    rmdir(path);
  }
  t[4] = now();
  printf("%.3f %.3f %.3f %.3f %.3f\n", t[1] - t[0], t[2] - t[1], t[3] - t[2], t[4] - t[3], t[4] - t[0]);
  return 0;
}
