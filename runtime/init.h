// Internal to runtime/: docker's --init without an extra binary. The container's first process,
// once everything is set up, forks: the child goes on to execute the command, and the parent
// stays PID 1 as a minimal init (as tini does): it reaps every orphan that the kernel re-parents
// to it, passes the signals it gets on to the command, and exits with the command's status
// (128+N when signal N killed it). Only async-signal-safe calls: it runs in a child cloned from
// a possibly multithreaded process.
#pragma once

namespace slipway::runtime {

// Forks. Returns in the child (which then executes the command); the parent never returns.
// The parent closes every descriptor it holds, the start-error pipe among them, so
// that the child's execve is what closes that pipe for the waiting supervisor.
void become_init();

}  // namespace slipway::runtime
