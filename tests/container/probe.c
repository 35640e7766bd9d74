/* Checks run inside a container by the containment tests (built static, copied into the image).
 *   probe fds          the fds open in this process, in order (the listing's own left out)
 *   probe handle PATH  what open_by_handle_at does with PATH's handle, through PATH's mount,
 *                      and, when that works on an ext4-style handle, with the handle of that
 *                      filesystem's root directory (inode 2): the "shocker" escape. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static int list_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    perror("opendir /proc/self/fd");
    return 1;
  }
  int fds[4096], n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < 4096) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd != dirfd(d)) fds[n++] = fd;
  }
  closedir(d);
  qsort(fds, n, sizeof fds[0], cmp_int);
  for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", fds[i]);
  printf("\n");
  return 0;
}

static int by_handle(const char *path) {
  struct file_handle *h = malloc(sizeof *h + MAX_HANDLE_SZ);
  int mount_id;
  h->handle_bytes = MAX_HANDLE_SZ;
  if (name_to_handle_at(AT_FDCWD, path, h, &mount_id, 0) != 0) {
    printf("name_to_handle_at: %s\n", strerrorname_np(errno));
    return 0;
  }
  int mount_fd = open(path, O_RDONLY);
  int fd = open_by_handle_at(mount_fd, h, O_RDONLY);
  if (fd < 0) {
    printf("open_by_handle_at: %s\n", strerrorname_np(errno));
    return 0;
  }
  printf("open_by_handle_at: OK\n");
  if (h->handle_type == 1 /* FILEID_INO32_GEN */) {
    struct file_handle *root = malloc(sizeof *root + 8);
    uint32_t ino_gen[2] = {2, 0};
    root->handle_bytes = 8;
    root->handle_type = 1;
    memcpy(root->f_handle, ino_gen, 8);
    int rfd = open_by_handle_at(mount_fd, root, O_RDONLY | O_DIRECTORY);
    printf("filesystem root: %s\n", rfd >= 0 ? "opened" : strerrorname_np(errno));
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "fds") == 0) return list_fds();
  if (argc == 3 && strcmp(argv[1], "handle") == 0) return by_handle(argv[2]);
  fprintf(stderr, "usage: probe fds | probe handle PATH\n");
  return 2;
}
