/* A tiny static program for cold-start tests: the images under test have no shell or libc.
 *   probe [ok]          print "probe ready" and exit 0
 *   probe fail          print three lines and exit 3
 *   probe sleep         print "sleeping" and sleep until killed
 *   probe serve PORT    print "listening on PORT", answer every HTTP request with 200
 *   probe need PATH...  exit 0 if every PATH exists, else name the first missing one, exit 1
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>

static int serve(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) {
        perror("probe: listen");
        return 2;
    }
    printf("listening on %d\n", port);
    fflush(stdout);
    for (;;) {
        char buf[1024];
        const char *reply = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        if (read(c, buf, sizeof buf) >= 0 && write(c, reply, strlen(reply)) < 0)
            perror("probe: write");
        close(c);
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "ok";
    struct stat st;
    if (!strcmp(mode, "ok")) {
        puts("probe ready");
        return 0;
    }
    if (!strcmp(mode, "fail")) {
        puts("probe: starting");
        puts("probe: loading config");
        puts("probe: config missing, giving up");
        return 3;
    }
    if (!strcmp(mode, "sleep")) {
        puts("sleeping");
        fflush(stdout);
        for (;;)
            pause();
    }
    if (!strcmp(mode, "serve") && argc > 2)
        return serve(atoi(argv[2]));
    if (!strcmp(mode, "need")) {
        for (int i = 2; i < argc; i++)
            if (stat(argv[i], &st) != 0) {
                printf("probe: %s is missing\n", argv[i]);
                return 1;
            }
        puts("probe: everything is there");
        return 0;
    }
    fprintf(stderr, "probe: unknown mode %s\n", mode);
    return 2;
}
