// A UDP echo server for the busybox images of the port tests (busybox has no UDP server
// applet): `udp-echo PORT` answers each datagram with "echo:" and the datagram, to its sender.
// Linked statically, so that it runs in an image that has no C library.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: udp-echo PORT\n");
    return 2;
  }
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
    std::perror("udp-echo: bind");
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    char buffer[65536];
    std::memcpy(buffer, "echo:", 5);
    sockaddr_storage from{};
    socklen_t length = sizeof from;
    ssize_t got = ::recvfrom(fd, buffer + 5, sizeof buffer - 5, 0,
                             reinterpret_cast<sockaddr*>(&from), &length);
    if (got < 0) continue;
    ::sendto(fd, buffer, size_t(got) + 5, 0, reinterpret_cast<sockaddr*>(&from), length);
  }
}
