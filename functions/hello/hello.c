/* functions/hello: answers every request at once with "Hello from <K_REVISION or hostname>\n".
 * HTTP/1.1 on $PORT (default 8080), keep-alive, clean SIGTERM shutdown (see ../fn_httpd.h). */
#include <stdio.h>

#include "../fn_httpd.h"

void fn_handle(const struct fn_request *req, struct fn_response *resp)
{
	(void)req;
	resp->status = 200;
	snprintf(resp->body, sizeof(resp->body), "Hello from %s\n", fn_identity());
}

int main(void)
{
	return fn_serve("hello");
}
