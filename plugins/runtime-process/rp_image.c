/* plugins/runtime-process/rp_image.c: image names -> local executables. An image resolves through
 * `images` (a JSON object {"dev.local/hello": "/path/to/hello", ...}); the image is tried as
 * given, without its @digest, and without its :tag. Built in (overridable by `images`):
 * `queue-image` -> `queue-bin` (Knative's queue-proxy image name in the rig's
 * config-deployment -> the binary rig/build caches). An image mapping to nothing or to a
 * non-executable file fails the sandbox with reason ErrImagePull and a message naming the image
 * (runtime_process.c).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp.h"

/* One entry of rp->images; the map's key points at image. */
struct rp_image {
	char *image, *path;
};

static void add_image(struct rp *rp, const char *image, const char *path)
{
	struct rp_image *im = kd_strmap_get(&rp->images, image);
	if (im) {
		free(im->path);
		im->path = kd_xstrdup(path);
		return;
	}
	im = kd_xcalloc(1, sizeof(*im));
	im->image = kd_xstrdup(image);
	im->path = kd_xstrdup(path);
	kd_strmap_put(&rp->images, im->image, im);
}

int rp_images_init(struct rp *rp, struct kd_error **err)
{
	const struct rp_config *cfg = rp->cfg;
	/* built-in queue-proxy first, the table overrides */
	add_image(rp, cfg->queue_image, cfg->queue_bin);
	struct json_object *tab = json_tokener_parse(cfg->images ? cfg->images : "{}");
	if (!tab || !json_object_is_type(tab, json_type_object)) {
		json_object_put(tab);
		return rp_err(rp, err, EINVAL, "images: not a JSON object of image -> path");
	}
	json_object_object_foreach(tab, k, v)
	{
		if (!json_object_is_type(v, json_type_string)) {
			json_object_put(tab);
			return rp_err(rp, err, EINVAL, "images: value of \"%s\" is not a string",
			              k);
		}
		add_image(rp, k, json_object_get_string(v));
	}
	json_object_put(tab);
	return 0;
}

void rp_images_fini(struct rp *rp)
{
	size_t pos = 0;
	for (struct rp_image *im; (im = kd_strmap_next(&rp->images, &pos));) {
		free(im->image);
		free(im->path);
		free(im); /* the map is only finalised afterwards */
	}
	kd_strmap_fini(&rp->images);
}

const char *rp_image_lookup(const struct rp *rp, const char *image)
{
	char cand[3][512];
	snprintf(cand[0], sizeof(cand[0]), "%s", image);
	snprintf(cand[1], sizeof(cand[1]), "%s", image);
	char *at = strchr(cand[1], '@');
	if (at)
		*at = '\0';
	snprintf(cand[2], sizeof(cand[2]), "%s", cand[1]);
	char *colon = strrchr(cand[2], ':');
	char *slash = strrchr(cand[2], '/');
	if (colon && (!slash || colon > slash))
		*colon = '\0';
	for (int c = 0; c < 3; c++) {
		const struct rp_image *im = kd_strmap_get(&rp->images, cand[c]);
		if (im)
			return im->path;
	}
	return NULL;
}
