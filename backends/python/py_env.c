/*
 * ngx_kserve: a Python model's execution environment (see py_env.h).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "py_env.h"


#define KSV_PY_ENV_KEY  "EXECUTION_ENV_PATH"
#define KSV_PY_ENV_DIR  "$$TRITON_MODEL_DIRECTORY"


static char *
ksv_env_printf(const char *fmt, ...)
{
    char     *s;
    va_list   ap;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
    }
    va_end(ap);
    return s;
}


/* The parameter's value with $$TRITON_MODEL_DIRECTORY expanded. */
static char *
ksv_env_path(const ksv_model_config_t *c, const char *model_dir)
{
    char        *out, *o;
    size_t       n, dlen, klen;
    uint32_t     i;
    const char  *v, *end, *hit;

    for (i = 0; i < c->nparameters; i++) {
        if (ksv_str_eq(c->parameters[i].key, KSV_PY_ENV_KEY)) {
            break;
        }
    }
    if (i == c->nparameters || c->parameters[i].value.len == 0) {
        return NULL;
    }

    v = c->parameters[i].value.data;
    end = v + c->parameters[i].value.len;
    dlen = strlen(model_dir);
    klen = sizeof(KSV_PY_ENV_DIR) - 1;

    out = malloc((size_t) (end - v) * (dlen + 1) + 1);
    if (out == NULL) {
        return NULL;
    }
    for (o = out; v < end; ) {
        hit = memmem(v, (size_t) (end - v), KSV_PY_ENV_DIR, klen);
        n = hit != NULL ? (size_t) (hit - v) : (size_t) (end - v);
        memcpy(o, v, n);
        o += n;
        v += n;
        if (hit != NULL) {
            memcpy(o, model_dir, dlen);
            o += dlen;
            v += klen;
        }
    }
    *o = '\0';
    return out;
}


static int
ksv_env_is_archive(const char *path)
{
    size_t  n = strlen(path);

    return (n > 7 && strcmp(path + n - 7, ".tar.gz") == 0)
           || (n > 4 && strcmp(path + n - 4, ".tgz") == 0);
}


/* FNV-1a over the file's bytes: the cache key of an archive. */
static int
ksv_env_hash(const char *path, uint64_t *h)
{
    int            fd;
    ssize_t        n, i;
    unsigned char  buf[65536];

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    *h = 0xcbf29ce484222325ULL;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (i = 0; i < n; i++) {
            *h = (*h ^ buf[i]) * 0x100000001b3ULL;
        }
    }
    close(fd);
    return n < 0 ? -1 : 0;
}


static void
ksv_env_rmtree(const char *path)
{
    DIR            *d;
    char           *sub;
    struct stat     st;
    struct dirent  *de;

    if (lstat(path, &st) != 0) {
        return;
    }
    if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            {
                continue;
            }
            sub = ksv_env_printf("%s/%s", path, de->d_name);
            if (sub != NULL) {
                ksv_env_rmtree(sub);
                free(sub);
            }
        }
        closedir(d);
        (void) rmdir(path);
        return;
    }
    (void) unlink(path);
}


/* tar -xzf archive -C dir; 0 when it exited 0. */
static int
ksv_env_untar(const char *archive, const char *dir)
{
    int    status;
    pid_t  pid;

    pid = fork();
    if (pid == 0) {
        dup2(2, 1);
        execlp("tar", "tar", "-xzf", archive, "-C", dir, (char *) NULL);
        _exit(127);
    }
    if (pid < 0) {
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}


/* The archive's unpacked copy in <run>/envs/<hash>, made when missing. */
static char *
ksv_env_unpack(const ksv_instance_opts_t *o, const char *archive, char **err)
{
    int          lock;
    char        *envs, *dir, *tmp, *lockpath;
    uint64_t     h;
    struct stat  st;

    if (ksv_env_hash(archive, &h) != 0) {
        *err = ksv_env_printf("EXECUTION_ENV_PATH '%s': cannot read it: %s",
                              archive, strerror(errno));
        return NULL;
    }

    envs = ksv_env_printf("%s/envs", o->run_dir != NULL ? o->run_dir
                                                        : "/tmp");
    dir = ksv_env_printf("%s/%016llx", envs, (unsigned long long) h);
    tmp = ksv_env_printf("%s.tmp.%d", dir, (int) getpid());
    lockpath = ksv_env_printf("%s.lock", dir);
    if (envs == NULL || dir == NULL || tmp == NULL || lockpath == NULL) {
        *err = strdup("out of memory");
        goto failed;
    }

    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        goto done;              /* unpacked by an instance before */
    }

    (void) mkdir(envs, 0700);
    lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) {
        *err = ksv_env_printf("EXECUTION_ENV_PATH '%s': cannot lock %s: %s",
                              archive, lockpath, strerror(errno));
        if (lock >= 0) {
            close(lock);
        }
        goto failed;
    }

    /* another instance may have unpacked it while this one waited */
    if (!(stat(dir, &st) == 0 && S_ISDIR(st.st_mode))) {
        fprintf(stderr, "%s: %s: unpacking %s into %s\n", o->prog, o->model,
                archive, dir);
        if (mkdir(tmp, 0700) != 0 || ksv_env_untar(archive, tmp) != 0
            || rename(tmp, dir) != 0)
        {
            *err = ksv_env_printf("EXECUTION_ENV_PATH '%s': cannot unpack "
                                  "it into %s", archive, dir);
            ksv_env_rmtree(tmp);
            close(lock);
            goto failed;
        }
    }
    close(lock);

done:

    free(envs);
    free(tmp);
    free(lockpath);
    return dir;

failed:

    free(envs);
    free(dir);
    free(tmp);
    free(lockpath);
    return NULL;
}


/* env/lib/pythonX.Y/site-packages for the embedded X.Y, else why not. */
static char *
ksv_env_site(const char *env, const char *shown, char **err)
{
    DIR            *d;
    char           *lib, *site, found[64];
    char            want[32];
    struct stat     st;
    struct dirent  *de;

    snprintf(want, sizeof(want), "python%d.%d", PY_MAJOR_VERSION,
             PY_MINOR_VERSION);
    lib = ksv_env_printf("%s/lib", env);
    site = ksv_env_printf("%s/lib/%s/site-packages", env, want);
    if (lib == NULL || site == NULL) {
        free(lib);
        free(site);
        *err = strdup("out of memory");
        return NULL;
    }

    if (stat(site, &st) == 0 && S_ISDIR(st.st_mode)) {
        free(lib);
        return site;
    }
    free(site);

    found[0] = '\0';
    d = opendir(lib);
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "python", 6) == 0 && de->d_name[6] >= '0'
            && de->d_name[6] <= '9')
        {
            snprintf(found, sizeof(found), "%s", de->d_name + 6);
            break;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    free(lib);

    if (found[0] != '\0') {
        *err = ksv_env_printf("EXECUTION_ENV_PATH '%s' holds Python %s, but "
                              "the instance embeds Python %d.%d", shown,
                              found, PY_MAJOR_VERSION, PY_MINOR_VERSION);
    } else {
        *err = ksv_env_printf("EXECUTION_ENV_PATH '%s' holds no Python "
                              "(no lib/pythonX.Y/site-packages); the "
                              "instance embeds Python %d.%d", shown,
                              PY_MAJOR_VERSION, PY_MINOR_VERSION);
    }
    return NULL;
}


/* Whether dir is one of the components of the colon list. */
static int
ksv_env_listed(const char *list, const char *dir)
{
    size_t       n = strlen(dir);
    const char  *p;

    for (p = list; p != NULL && *p != '\0'; ) {
        if (strncmp(p, dir, n) == 0 && (p[n] == ':' || p[n] == '\0')) {
            return 1;
        }
        p = strchr(p, ':');
        p = p != NULL ? p + 1 : NULL;
    }
    return 0;
}


int
ksv_py_env_prepare(const ksv_instance_opts_t *o,
    const ksv_model_config_t *config, const char *model_dir, char **argv,
    char **site, char **err)
{
    char         *path, *env, *lib, *ld, real[PATH_MAX];
    const char   *old;
    struct stat   st;

    *site = NULL;
    path = ksv_env_path(config, model_dir);
    if (path == NULL) {
        return 0;
    }

    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        env = realpath(path, real) != NULL ? strdup(real) : strdup(path);
    } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)
               && ksv_env_is_archive(path))
    {
        env = ksv_env_unpack(o, path, err);
        if (env == NULL) {
            free(path);
            return -1;
        }
    } else {
        *err = ksv_env_printf("EXECUTION_ENV_PATH '%s': %s", path,
                              stat(path, &st) != 0 ? strerror(errno)
                              : "neither a directory nor a .tar.gz archive");
        free(path);
        return -1;
    }

    *site = ksv_env_site(env, path, err);
    if (*site == NULL) {
        free(env);
        free(path);
        return -1;
    }

    /* the loader reads LD_LIBRARY_PATH at exec: set it and start again */
    lib = ksv_env_printf("%s/lib", env);
    old = getenv("LD_LIBRARY_PATH");
    if (lib != NULL && !ksv_env_listed(old, lib)) {
        ld = ksv_env_printf("%s%s%s", lib, old != NULL && old[0] ? ":" : "",
                            old != NULL ? old : "");
        if (ld != NULL && setenv("LD_LIBRARY_PATH", ld, 1) == 0) {
            execv("/proc/self/exe", argv);
            fprintf(stderr, "%s: %s: cannot exec itself with "
                    "LD_LIBRARY_PATH=%s: %s\n", o->prog, o->model, ld,
                    strerror(errno));
        }
        free(ld);
    }

    fprintf(stderr, "%s: %s: execution environment %s (from %s)\n", o->prog,
            o->model, env, path);
    free(lib);
    free(env);
    free(path);
    return 0;
}
