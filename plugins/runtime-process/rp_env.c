/* plugins/runtime-process/rp_env.c: what a container process is started with. argv: the mapped
 * executable is always what runs; argv[0] is command[0] if the spec has a command (its other
 * entries follow), else the executable's path; then args. Env: the spec's env (later duplicates
 * win; the host resolved the downward API from the Pod, kd/runtimejson.h), with the sandbox's
 * address for KD_ENV_POD_IP and `host-ip` for KD_ENV_HOST_IP; without a Pod object, empty
 * SERVING_POD/SERVING_POD_IP/POD_NAME/POD_IP are filled. Added when absent: PATH, HOSTNAME (pod
 * name), PORT (the container's first port, for the sample functions).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp.h"

struct envb {
	char **v;
	size_t n;
};

static void env_set(struct envb *e, const char *name, const char *value, bool overwrite)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < e->n; i++) {
		if (strncmp(e->v[i], name, nl) == 0 && e->v[i][nl] == '=') {
			if (overwrite) {
				free(e->v[i]);
				e->v[i] = kd_xasprintf("%s=%s", name, value);
			}
			return;
		}
	}
	e->v = kd_xrealloc(e->v, (e->n + 2) * sizeof(*e->v));
	e->v[e->n++] = kd_xasprintf("%s=%s", name, value);
	e->v[e->n] = NULL;
}

char **rp_env_build(const struct rp *rp, const struct sandbox *sb,
                    const struct kd_container_spec *cs, bool have_pod)
{
	struct envb e = {0};
	e.v = kd_xcalloc(1, sizeof(*e.v));
	for (size_t i = 0; i < cs->n_env; i++) {
		const char *name = cs->env[i].name;
		const char *value = cs->env[i].value ? cs->env[i].value : "";
		if (cs->env[i].source == KD_ENV_POD_IP)
			value = sb->ip;
		else if (cs->env[i].source == KD_ENV_HOST_IP)
			value = rp->cfg->host_ip ? rp->cfg->host_ip : "";
		if (!have_pod && !*value) {
			if (strcmp(name, "SERVING_POD") == 0 || strcmp(name, "POD_NAME") == 0)
				value = sb->name;
			else if (strcmp(name, "SERVING_POD_IP") == 0 || strcmp(name, "POD_IP") == 0)
				value = sb->ip;
		}
		env_set(&e, name, value, true);
	}
	env_set(&e, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", false);
	env_set(&e, "HOSTNAME", sb->name, false);
	if (cs->n_ports) {
		char port[16];
		snprintf(port, sizeof(port), "%u", cs->ports[0].container_port);
		env_set(&e, "PORT", port, false);
	}
	return e.v;
}

void rp_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

char **rp_strv_dup(const char *const *v, size_t n)
{
	char **out = kd_xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = kd_xstrdup(v[i]);
	return out;
}

char **rp_argv_build(const struct kd_container_spec *cs, const char *path)
{
	size_t nc = cs->command ? cs->n_command : 0;
	char **argv = kd_xcalloc(KD_MAX(nc, 1) + cs->n_args + 1, sizeof(char *));
	size_t k = 0;
	argv[k++] = kd_xstrdup(nc ? cs->command[0] : path);
	for (size_t j = 1; j < nc; j++)
		argv[k++] = kd_xstrdup(cs->command[j]);
	for (size_t j = 0; j < cs->n_args; j++)
		argv[k++] = kd_xstrdup(cs->args[j]);
	return argv;
}
