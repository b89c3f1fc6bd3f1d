/* cmd_hw.c — `vib3 hw`: what this machine offers vib3.
 *
 * CPU model, cores / threads (and the affinity mask), the ISA features
 * usable (CPUID and the OS's XCR0, via simd/dispatch.c), the kernel variant
 * vib3 will run, RAM total / available (plus a cgroup memory limit), the
 * block device under the model store ($VIB3_HOME, else the current
 * directory) and, with --probe, a short O_DIRECT read of a temporary file
 * there; CUDA devices with free VRAM when built with CUDA=1; whether
 * io_uring can be set up; the config file the settings came from (or the
 * built-in defaults). --json prints one object.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "simd/simd.h"

#ifdef VIB3_CUDA
#include <cuda_runtime_api.h>
#endif

typedef struct hw_info {
    char cpu_model[128];
    long threads_online, threads_affinity, cores_physical;
    char features[256];
    const char *isa, *isa_best;
    uint64_t ram_total, ram_available, cgroup_limit;
    char store_dir[VIB3_PATH_MAX];
    char dev_name[64], fs_type[32], mount_point[256], dev_model[64];
    unsigned dev_major, dev_minor;
    int rotational; /* -1 unknown */
    bool probed;
    double probe_gbps;
    char probe_note[256];
    bool io_uring_ok;
    char io_uring_note[96];
    int cuda_count;
    char cuda_note[512];
    char config_file[VIB3_PATH_MAX]; /* "" = built-in defaults */
} hw_info;

/* ---- helpers ------------------------------------------------------------------- */
static bool read_line_file(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (ok) out[strcspn(out, "\n")] = 0;
    return ok;
}

static void cpu_info(hw_info *h) {
    snprintf(h->cpu_model, sizeof h->cpu_model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    /* (physical id, core id) pairs, to count physical cores */
    int pairs[1024][2], n_pairs = 0, phys = 0;
    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (!colon) continue;
            char *val = colon + 1;
            while (*val == ' ') val++;
            val[strcspn(val, "\n")] = 0;
            if ((!strncmp(line, "model name", 10) || !strncmp(line, "Hardware", 8)) && !strcmp(h->cpu_model, "unknown"))
                snprintf(h->cpu_model, sizeof h->cpu_model, "%s", val);
            else if (!strncmp(line, "physical id", 11)) phys = atoi(val);
            else if (!strncmp(line, "core id", 7)) {
                int core = atoi(val), seen = 0;
                for (int i = 0; i < n_pairs; i++) seen |= pairs[i][0] == phys && pairs[i][1] == core;
                if (!seen && n_pairs < 1024) pairs[n_pairs][0] = phys, pairs[n_pairs][1] = core, n_pairs++;
            }
        }
        fclose(f);
    }
    h->threads_online = sysconf(_SC_NPROCESSORS_ONLN);
    h->cores_physical = n_pairs ? n_pairs : h->threads_online;
    cpu_set_t set;
    h->threads_affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : h->threads_online;
    vib3_simd_cpu_features_str(vib3_simd_cpu_features(), h->features, sizeof h->features);
    h->isa = vib3_simd()->name;
    h->isa_best = vib3_simd_best_name();
}

static void mem_info(hw_info *h) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    if (f) {
        while (fgets(line, sizeof line, f)) {
            unsigned long long kb;
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) h->ram_total = kb * 1024;
            else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) h->ram_available = kb * 1024;
        }
        fclose(f);
    }
    char v[64];
    if (read_line_file("/sys/fs/cgroup/memory.max", v, sizeof v) && strcmp(v, "max"))
        h->cgroup_limit = strtoull(v, NULL, 10);
    else if (read_line_file("/sys/fs/cgroup/memory/memory.limit_in_bytes", v, sizeof v)) {
        unsigned long long l = strtoull(v, NULL, 10);
        if (l < (1ull << 60)) h->cgroup_limit = l;
    }
}

/* the mount and block device holding dir: st_dev matched against /proc/self/mountinfo */
static void store_info(hw_info *h, const vib3_config *cfg) {
    struct stat st;
    /* the store ($VIB3_HOME), or its nearest existing parent when it has not been created yet:
     * the same directory `vib3 list` and `vib3 pull` use */
    char dir_buf[VIB3_PATH_MAX];
    snprintf(dir_buf, sizeof dir_buf, "%s", cfg->home[0] ? cfg->home : ".");
    while (stat(dir_buf, &st) != 0) {
        char *slash = strrchr(dir_buf, '/');
        if (!slash || slash == dir_buf) {
            snprintf(dir_buf, sizeof dir_buf, "%s", slash ? "/" : ".");
            break;
        }
        *slash = 0;
    }
    const char *dir = dir_buf;
    if (!realpath(dir, h->store_dir)) snprintf(h->store_dir, sizeof h->store_dir, "%s", dir);
    h->rotational = -1;
    snprintf(h->dev_name, sizeof h->dev_name, "?");
    if (stat(h->store_dir, &st) != 0) return;
    h->dev_major = major(st.st_dev), h->dev_minor = minor(st.st_dev);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[1024];
    if (f) {
        while (fgets(line, sizeof line, f)) {
            unsigned ma, mi;
            char mnt[256], fstype[32], src[128];
            /* id parent maj:min root mount-point options ... - fstype source super-options */
            if (sscanf(line, "%*d %*d %u:%u %*s %255s", &ma, &mi, mnt) != 3 || ma != h->dev_major || mi != h->dev_minor)
                continue;
            char *dash = strstr(line, " - ");
            if (dash && sscanf(dash + 3, "%31s %127s", fstype, src) == 2) {
                snprintf(h->fs_type, sizeof h->fs_type, "%s", fstype);
                snprintf(h->mount_point, sizeof h->mount_point, "%s", mnt);
                const char *base = strrchr(src, '/');
                snprintf(h->dev_name, sizeof h->dev_name, "%.63s", base ? base + 1 : src);
            }
        }
        fclose(f);
    }
    /* /sys/dev/block/M:m -> .../block/<disk>[/<partition>] */
    char link[256], target[512];
    snprintf(link, sizeof link, "/sys/dev/block/%u:%u", h->dev_major, h->dev_minor);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return;
    target[n] = 0;
    char *blk = strstr(target, "/block/");
    if (!blk) return;
    char disk[64];
    if (sscanf(blk + 7, "%63[^/]", disk) != 1) return;
    snprintf(h->dev_name, sizeof h->dev_name, "%s", disk);
    char path[256], v[64];
    snprintf(path, sizeof path, "/sys/block/%s/queue/rotational", disk);
    if (read_line_file(path, v, sizeof v)) h->rotational = atoi(v);
    snprintf(path, sizeof path, "/sys/block/%s/device/model", disk);
    if (read_line_file(path, h->dev_model, sizeof h->dev_model)) {
        size_t l = strlen(h->dev_model);
        while (l && h->dev_model[l - 1] == ' ') h->dev_model[--l] = 0;
    }
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* write a 256 MiB temp file, then read it back with O_DIRECT in 1 MiB requests into a
 * huge-page buffer (what the page reader does); the file is removed afterwards */
static void probe_disk(hw_info *h) {
    const size_t chunk = 1u << 20, total = 256u << 20;
    char path[VIB3_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/.vib3-hw-probe-%d", h->store_dir, (int)getpid());
    h->probed = true;
    void *buf = mmap(NULL, 2u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        snprintf(h->probe_note, sizeof h->probe_note, "no memory for the probe buffer");
        return;
    }
    madvise(buf, 2u << 20, MADV_HUGEPAGE);
    memset(buf, 0x5a, chunk);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_DIRECT, 0600);
    if (fd < 0) {
        snprintf(h->probe_note, sizeof h->probe_note, "cannot create %.80s with O_DIRECT: %.60s", path, strerror(errno));
        munmap(buf, 2u << 20);
        return;
    }
    bool ok = true;
    for (size_t off = 0; off < total && ok; off += chunk) ok = pwrite(fd, buf, chunk, (off_t)off) == (ssize_t)chunk;
    ok = ok && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        snprintf(h->probe_note, sizeof h->probe_note, "writing the probe file failed: %s", strerror(errno));
        unlink(path);
        munmap(buf, 2u << 20);
        return;
    }
    fd = open(path, O_RDONLY | O_DIRECT);
    double t0 = now_s();
    size_t got = 0;
    for (size_t off = 0; fd >= 0 && off < total; off += chunk) {
        ssize_t r = pread(fd, buf, chunk, (off_t)off);
        if (r <= 0) break;
        got += (size_t)r;
    }
    double s = now_s() - t0;
    if (fd >= 0) close(fd);
    unlink(path);
    munmap(buf, 2u << 20);
    if (got != total) {
        snprintf(h->probe_note, sizeof h->probe_note, "O_DIRECT read stopped at %zu of %zu bytes", got, total);
        return;
    }
    h->probe_gbps = (double)total / s / 1e9;
    snprintf(h->probe_note, sizeof h->probe_note, "256 MiB, 1 MiB O_DIRECT reads at queue depth 1");
}

static void uring_info(hw_info *h) {
    struct io_uring ring;
    int rc = io_uring_queue_init(4, &ring, 0);
    h->io_uring_ok = rc == 0;
    if (rc == 0) {
        io_uring_queue_exit(&ring);
        snprintf(h->io_uring_note, sizeof h->io_uring_note, "io_uring_queue_init ok");
    } else
        snprintf(h->io_uring_note, sizeof h->io_uring_note, "io_uring_queue_init: %s", strerror(-rc));
}

static void cuda_info(hw_info *h) {
#ifdef VIB3_CUDA
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        h->cuda_count = 0;
        snprintf(h->cuda_note, sizeof h->cuda_note, "CUDA built in; no device: %s", cudaGetErrorString(e));
        return;
    }
    h->cuda_count = n;
    size_t used = 0;
    used += (size_t)snprintf(h->cuda_note, sizeof h->cuda_note, "%d device(s)", n);
    for (int i = 0; i < n && used < sizeof h->cuda_note; i++) {
        struct cudaDeviceProp p;
        size_t free_b = 0, total_b = 0;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        if (cudaSetDevice(i) == cudaSuccess) cudaMemGetInfo(&free_b, &total_b);
        used += (size_t)snprintf(h->cuda_note + used, sizeof h->cuda_note - used,
                                 "; %d: %s sm_%d%d, %.1f GiB free of %.1f GiB", i, p.name, p.major, p.minor,
                                 (double)free_b / (1 << 30), (double)total_b / (1 << 30));
    }
#else
    h->cuda_count = -1;
    snprintf(h->cuda_note, sizeof h->cuda_note, "not built in (make CUDA=1)");
#endif
}

/* ---- output -------------------------------------------------------------------- */
static void json_str(const char *key, const char *v, bool last) {
    printf("\"%s\":\"", key);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if ((unsigned char)*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    printf("\"%s", last ? "" : ",");
}

static void print_json(const hw_info *h) {
    printf("{");
    json_str("cpu_model", h->cpu_model, false);
    printf("\"threads_online\":%ld,\"threads_affinity\":%ld,\"cores_physical\":%ld,", h->threads_online,
           h->threads_affinity, h->cores_physical);
    json_str("isa_features", h->features, false);
    json_str("kernel_variant", h->isa, false);
    json_str("kernel_variant_best", h->isa_best, false);
    printf("\"ram_total_bytes\":%llu,\"ram_available_bytes\":%llu,\"cgroup_limit_bytes\":%llu,",
           (unsigned long long)h->ram_total, (unsigned long long)h->ram_available, (unsigned long long)h->cgroup_limit);
    printf("\"store\":{");
    json_str("dir", h->store_dir, false);
    json_str("device", h->dev_name, false);
    printf("\"dev\":\"%u:%u\",", h->dev_major, h->dev_minor);
    json_str("model", h->dev_model, false);
    json_str("fs_type", h->fs_type, false);
    json_str("mount_point", h->mount_point, false);
    printf("\"rotational\":%d", h->rotational);
    if (h->probed) {
        printf(",\"probe_read_gbps\":%.3f,", h->probe_gbps);
        json_str("probe_note", h->probe_note, true);
    }
    printf("},\"io_uring\":%s,", h->io_uring_ok ? "true" : "false");
    json_str("io_uring_note", h->io_uring_note, false);
    printf("\"cuda_devices\":%d,", h->cuda_count);
    json_str("cuda", h->cuda_note, false);
    if (h->config_file[0]) json_str("config_file", h->config_file, true);
    else printf("\"config_file\":null");
    printf("}\n");
}

static void print_text(const hw_info *h) {
    char a[32], b[32], c[32];
    printf("cpu            %s\n", h->cpu_model);
    printf("threads        %ld online, %ld in affinity mask, %ld physical cores\n", h->threads_online,
           h->threads_affinity, h->cores_physical);
    printf("isa            %s\n", h->features[0] ? h->features : "(none detected)");
    printf("kernels        %s (best for this CPU: %s; override with VIB3_ISA=)\n", h->isa, h->isa_best);
    printf("ram            %s total, %s available", vib3_format_size(h->ram_total, a, sizeof a),
           vib3_format_size(h->ram_available, b, sizeof b));
    if (h->cgroup_limit) printf(", cgroup limit %s", vib3_format_size(h->cgroup_limit, c, sizeof c));
    printf("\n");
    printf("store          %s on %s (%u:%u%s%s) %s at %s%s\n", h->store_dir, h->dev_name, h->dev_major, h->dev_minor,
           h->dev_model[0] ? ", " : "", h->dev_model, h->fs_type[0] ? h->fs_type : "?",
           h->mount_point[0] ? h->mount_point : "?",
           h->rotational == 1 ? ", rotational" : h->rotational == 0 ? ", non-rotational" : "");
    if (h->probed) {
        if (h->probe_gbps > 0) printf("disk read      %.2f GB/s (%s)\n", h->probe_gbps, h->probe_note);
        else printf("disk read      probe failed: %s\n", h->probe_note);
    }
    printf("io_uring       %s (%s)\n", h->io_uring_ok ? "usable" : "not usable", h->io_uring_note);
    printf("cuda           %s\n", h->cuda_note);
    printf("config         %s\n", h->config_file[0] ? h->config_file : "built-in defaults (no vib3.conf found)");
}

int vib3_cmd_hw(int argc, char **argv, vib3_config *cfg) {
    bool json = false, probe = false;
    for (int i = 1; i < argc; i++) {
        int c = vib3_cli_settings_flag(cfg, argc, argv, &i, "hw", VIB3_CLI_SET_HOME);
        if (c < 0) return 2;
        if (c > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vib3 hw [--probe] [--json]\n"
                   "  CPU, usable ISA features and kernel variant, RAM, the store's block device,\n"
                   "  io_uring and CUDA availability.\n"
                   "  --probe                also time 256 MiB of O_DIRECT reads of a temp file in the store dir\n"
                   "  --json                 one JSON object\n");
            vib3_cli_settings_help(stdout, VIB3_CLI_SET_HOME);
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--probe")) probe = true;
        else return vib3_cli_usage_error("hw", "unknown argument '%s'", argv[i]);
    }
    static hw_info h;
    memset(&h, 0, sizeof h);
    cpu_info(&h);
    mem_info(&h);
    store_info(&h, cfg);
    if (probe) probe_disk(&h);
    uring_info(&h);
    cuda_info(&h);
    snprintf(h.config_file, sizeof h.config_file, "%s", cfg->source_path);
    if (json) print_json(&h);
    else print_text(&h);
    return 0;
}
