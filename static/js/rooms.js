// Room names: the rule the server applies (src/ids.rs, RoomId::parse), repeated here so the
// home screen can explain a bad name before navigating. A Rust test (ids.rs) checks that this
// list and docs/protocol.md agree with the server's list.

/** Path segments the server uses for itself; never meetings. */
export const RESERVED_ROOM_NAMES = ['ws', 'static', 'health', 'metrics', 'api', 'favicon.ico'];

const ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** Why `name` cannot be a room, or '' when it can. */
export function roomNameProblem(name) {
  if (!ROOM_RE.test(name)) return 'use 1-64 letters, digits, - _ .';
  if (name.startsWith('.')) return 'a room name may not start with a dot';
  if (RESERVED_ROOM_NAMES.includes(name)) return `"${name}" is reserved (${RESERVED_ROOM_NAMES.join(', ')})`;
  return '';
}
