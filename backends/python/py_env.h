/*
 * ngx_kserve: a Python model's execution environment (Triton's
 * EXECUTION_ENV_PATH parameter).
 *
 *   parameters: { key: "EXECUTION_ENV_PATH"
 *                 value: { string_value: "$$TRITON_MODEL_DIRECTORY/env.tar.gz" } }
 *
 * The value names a conda-pack archive (.tar.gz / .tgz) or an environment
 * directory; "$$TRITON_MODEL_DIRECTORY" is the model's directory.  An
 * archive is unpacked once per content, into <run-dir>/envs/<hash>/ (its
 * bytes' hash, so every instance of every model using it shares one
 * copy, and a changed archive gets a new one), under a lock, to a
 * temporary directory renamed into place when whole.
 *
 * The environment must hold the embedded interpreter's Python version
 * (lib/pythonX.Y/site-packages): another version fails the load with a
 * message naming both.  Its site-packages go on sys.path ahead of the
 * system's, and its lib/ on LD_LIBRARY_PATH: the dynamic loader reads
 * that only when a process starts, so the instance execs itself again
 * with it set (once: the variable then holds the directory).
 */

#ifndef KSV_PY_ENV_H
#define KSV_PY_ENV_H

#include "ksv_instance.h"


/*
 * Prepares config's EXECUTION_ENV_PATH, if any.  Returns 0 with the
 * environment's site-packages in *site (malloc'd; NULL without one), or
 * -1 with a malloc'd message in *err.  May not return: when lib/ is not
 * on LD_LIBRARY_PATH yet it re-executes the instance with argv.
 */
int ksv_py_env_prepare(const ksv_instance_opts_t *o,
    const ksv_model_config_t *config, const char *model_dir, char **argv,
    char **site, char **err);

#endif /* KSV_PY_ENV_H */
