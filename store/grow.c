/* grow.c: LMDB data files written ahead of their last page.
 *
 * An fdatasync that also has to record a larger file (ext4 writes the inode too: synchronously
 * without a journal, as a journal commit with one) costs about twice one that only overwrites
 * blocks already written: 355-440 us against 220 us
 * for an 8 KiB write + fdatasync on this VM's disk (2026-12-01). LMDB grows data.mdb at the end,
 * so nearly every commit of an append-mostly environment paid the larger price. The store keeps
 * the file written with zeros GROW_LOW..GROW_LOW + GROW_CHUNK bytes past LMDB's last page: only
 * the commit that extends it pays for the inode, about once per GROW_CHUNK of data. That commit
 * also writes the zeros: with 1,000,000 certificates stored (bench_store), batch 64 had a p99
 * per commit of 12-16 ms with 2 MiB chunks, 7-8 ms with 1 MiB and 4-5 ms with 512 KiB, at the
 * same throughput. */
#include <errno.h>
#include <unistd.h>

#include "base/base.h"
#include "store/internal.h"

#define GROW_LOW (256u << 10)   /* extend when less than this is written past the last page */
#define GROW_CHUNK (512u << 10) /* by this much: the commit that extends also syncs the zeros */
#define GROW_ZEROS (64u << 10)

static uint8_t g_zeros[GROW_ZEROS];

int store_env_grow(MDB_env *env)
{
    ASSERT(env != NULL);
    MDB_envinfo info;
    MDB_stat st;
    int fd = -1;
    int rc = store_err_map(mdb_env_info(env, &info));
    if (rc != 0) {
        return rc;
    }
    rc = store_err_map(mdb_env_stat(env, &st));
    if (rc != 0) {
        return rc;
    }
    rc = store_err_map(mdb_env_get_fd(env, &fd));
    if (rc != 0) {
        return rc;
    }
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    /* The size by lseek, not fstat: a stat marks the file's timestamps as seen, so the next write
     * takes a fine-grained mtime (Linux 6.13+ multigrain timestamps) and dirties the inode, and
     * on ext4 every fdatasync then writes the inode too: +90 us per commit measured. LMDB writes
     * with pwrite, so moving this fd's offset changes nothing. */
    off_t end_off = lseek(fd, 0, SEEK_END);
    if (end_off == -1) {
        return store_err_map(errno);
    }
    uint64_t size = (uint64_t)end_off;
    if (size >= used + GROW_LOW) {
        return 0;
    }
    /* The caller holds the write lock and nothing of its transaction is written yet (LMDB writes
     * at commit), so nothing lives at or past the file's end: the zeros overwrite nothing. */
    uint64_t end = (size > used ? size : used) + GROW_CHUNK;
    end = end > info.me_mapsize ? info.me_mapsize : end;
    for (uint64_t off = size; off < end;) { /* bounded: at most GROW_CHUNK + GROW_LOW bytes */
        size_t len = end - off < GROW_ZEROS ? (size_t)(end - off) : GROW_ZEROS;
        ssize_t n = pwrite(fd, g_zeros, len, (off_t)off);
        if (n == -1) {
            return store_err_map(errno);
        }
        if (n == 0) {
            return -EIO; /* a regular file takes at least one byte: unexpected */
        }
        off += (uint64_t)n;
    }
    return 0;
}
