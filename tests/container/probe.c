/* Checks run inside a container by the containment tests (built static, copied into the image).
 *   probe fds          the fds open in this process, in order (the listing's own left out)
 *   probe handle PATH  what name_to_handle_at and open_by_handle_at do with PATH's handle
 *                      (or, when name_to_handle_at is refused, the ext4 root's) through PATH's
 *                      mount, and, when that works, with the handle of that filesystem's root
 *                      directory (inode 2): the "shocker" escape. */
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

static void set_ext4_root_handle(struct file_handle *h) {
  uint32_t ino_gen[2] = {2, 0}; /* FILEID_INO32_GEN: inode 2 (the root), generation 0 */
  h->handle_bytes = 8;
  h->handle_type = 1;
  memcpy(h->f_handle, ino_gen, 8);
}

static int by_handle(const char *path) {
  struct file_handle *h = malloc(sizeof *h + MAX_HANDLE_SZ);
  int mount_id;
  h->handle_bytes = MAX_HANDLE_SZ;
  if (name_to_handle_at(AT_FDCWD, path, h, &mount_id, 0) != 0) {
    printf("name_to_handle_at: %s\n", strerrorname_np(errno));
    set_ext4_root_handle(h); /* an attacker needs no name_to_handle_at for this one */
  } else {
    printf("name_to_handle_at: OK\n");
  }
  int mount_fd = open(path, O_RDONLY);
  int fd = open_by_handle_at(mount_fd, h, O_RDONLY);
  printf("open_by_handle_at: %s\n", fd >= 0 ? "OK" : strerrorname_np(errno));
  if (fd >= 0 && h->handle_type == 1) {
    struct file_handle *root = malloc(sizeof *root + 8);
    set_ext4_root_handle(root);
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
