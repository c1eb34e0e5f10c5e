# gen-dockerfile.awk: writes a synthetic Dockerfile of about `target_bytes` bytes to stdout for
# bench/parse-bench.sh. It repeats one stage template with its number filled in, so that the mix
# stays the same at any size: every instruction keyword, flags, shell and JSON forms, line
# continuations (with comments and blank lines inside them), heredocs (plain, quoted, <<-),
# ENV/LABEL in both forms, parser directives at the top.
#
#   awk -v target_bytes=5242880 -f bench/gen-dockerfile.awk > big.Dockerfile
function emit(line) {
  print line
  written += length(line) + 1
}
function stage(n,    m) {
  m = n % 10
  emit("# ---- stage " n ": a comment line before the stage")
  emit("FROM --platform=$BUILDPLATFORM busybox:1." m " AS stage" n)
  emit("ARG VERSION_" n "=1." n)
  emit("ARG NO_DEFAULT_" n)
  emit("ENV APP_HOME=/opt/app" n " \\")
  emit("    APP_VERSION=${VERSION_" n "} \\")
  emit("    PATH=/opt/app" n "/bin:$PATH")
  emit("ENV LEGACY_" n " a legacy value with spaces " n)
  emit("LABEL org.example.stage=\"" n "\" \\")
  emit("      org.example.description=\"stage number " n " of the benchmark\"")
  emit("RUN set -eux; \\")
  emit("    echo \"building stage " n "\"; \\")
  emit("    # a comment inside a continuation is dropped")
  emit("    mkdir -p /opt/app" n "/bin \\")
  emit("")
  emit("    && touch /opt/app" n "/bin/tool \\")
  emit("    && chmod 0755 /opt/app" n "/bin/tool")
  emit("RUN --mount=type=cache,target=/var/cache/app" m ",sharing=locked \\")
  emit("    --network=none \\")
  emit("    [ -d /var/cache/app" m " ] && ls /var/cache/app" m)
  emit("RUN [\"/bin/sh\", \"-c\", \"echo exec form " n " > /opt/app" n "/exec\"]")
  emit("RUN <<EOF")
  emit("set -e")
  emit("echo heredoc " n " $APP_HOME")
  emit("for i in 1 2 3; do echo $i; done")
  emit("EOF")
  emit("RUN <<-'SCRIPT' sh")
  emit("\techo tab-stripped " n)
  emit("\techo '$NOT_EXPANDED'")
  emit("\tSCRIPT")
  emit("COPY --chown=1000:1000 --chmod=0644 [\"src/a b.txt\", \"src/c.txt\", \"/opt/app" n "/\"]")
  emit("COPY --from=stage" (n > 0 ? n - 1 : 0) " /opt/app" (n > 0 ? n - 1 : 0) "/bin/tool /opt/app" n "/bin/prev")
  emit("COPY <<CONF /etc/app" n ".conf")
  emit("key=value" n)
  emit("home=${APP_HOME}")
  emit("CONF")
  emit("ADD --chmod=0600 files/archive" m ".tar.gz /opt/app" n "/")
  emit("WORKDIR /opt/app" n)
  emit("USER 1000:1000")
  emit("EXPOSE 80" m "/tcp 44" m "/udp")
  emit("VOLUME [\"/data" n "\", \"/logs" n "\"]")
  emit("SHELL [\"/bin/sh\", \"-eu\", \"-c\"]")
  emit("HEALTHCHECK --interval=30s --timeout=5s --retries=3 \\")
  emit("  CMD [\"/bin/sh\", \"-c\", \"test -f /opt/app" n "/bin/tool\"]")
  emit("STOPSIGNAL SIGTERM")
  emit("ONBUILD RUN echo onbuild " n)
  emit("ENTRYPOINT [\"/opt/app" n "/bin/tool\", \"--serve\"]")
  emit("CMD echo shell form cmd " n " && exec sleep 1")
  emit("")
}
BEGIN {
  if (target_bytes == "") target_bytes = 5 * 1024 * 1024
  emit("# syntax=docker/dockerfile:1")
  emit("# escape=\\")
  emit("ARG BUILDPLATFORM=linux/amd64")
  for (n = 0; written < target_bytes; n++) stage(n)
}
