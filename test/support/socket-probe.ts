/**
 * A Python program that connects to a unix socket (`unix <path>`) or a TCP port
 * (`tcp <host:port>`) and prints "connected" or the errno's name (EACCES, ECONNREFUSED…).
 * Run under `setpriv --reuid=… --regid=… --clear-groups`, it tells what a local user can reach,
 * in the namespace of the end-to-end stack and in the booted container alike.
 */
export const SOCKET_PROBE = `import errno, socket, sys
kind, target = sys.argv[1], sys.argv[2]
try:
    if kind == "unix":
        socket.socket(socket.AF_UNIX).connect(target)
    else:
        host, port = target.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=5)
    print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
`;

/** setpriv's arguments that run `python3 -c SOCKET_PROBE` as `user`:`group` with no other group. */
export function probeArgs(user: string, group: string, kind: "unix" | "tcp", target: string): string[] {
  return [`--reuid=${user}`, `--regid=${group}`, "--clear-groups", "/usr/bin/python3", "-c", SOCKET_PROBE, kind, target];
}
