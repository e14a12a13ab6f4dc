/*
 * EventLog — what happened in a bridge, for `swalectl events` (like `bridge monitor`): MAC
 * addresses learned, moved, expired and evicted, ports attached and detached.
 *
 * A fixed ring of `capacity` events, written only by the bridge's thread (the learning table's out
 * of line paths and the control plane's mailbox work), read by the control plane through the same
 * thread (`Bridge.perform`), so there is no locking. Every event gets the next sequence number; a
 * reader asks for the events after the last number it saw and learns how many it missed when the
 * ring wrapped in between. Nothing is allocated per event; the hot path (known MAC, same port)
 * records nothing.
 */
public final class EventLog {
    public enum Kind: UInt8, Sendable {
        case learned = 1
        case moved, expired, evicted, portAdded, portRemoved
        public var name: String {
            switch self {
            case .learned: return "learned"
            case .moved: return "moved"
            case .expired: return "expired"
            case .evicted: return "evicted"
            case .portAdded: return "port-added"
            case .portRemoved: return "port-removed"
            }
        }
    }

    public struct Event: Sendable {
        public var seq: UInt64
        public var kind: Kind
        public var port: UInt16
        public var vlan: UInt16
        /// The MAC (0 for port events).
        public var mac: UInt64
        /// Seconds of the bridge's monotonic clock.
        public var time: UInt32
    }

    public let capacity: Int
    let ring: UnsafeMutablePointer<Event>
    /// Events recorded so far (the next one gets this number plus one).
    @exclusivity(unchecked) public private(set) var last: UInt64 = 0

    public init(capacity: Int = 4096) {
        self.capacity = max(capacity, 1)
        ring = .allocate(capacity: self.capacity)
    }

    deinit { ring.deallocate() }

    @inline(__always)
    public func record(_ kind: Kind, port: UInt16, vlan: UInt16 = 0, mac: UInt64 = 0, time: UInt32) {
        last &+= 1
        (ring + Int(last % UInt64(capacity))).initialize(
            to: Event(seq: last, kind: kind, port: port, vlan: vlan, mac: mac, time: time))
    }

    /// Events after `seq` (at most `max`), and how many after `seq` were overwritten before this read.
    public func events(after seq: UInt64, max: Int = 1024) -> (events: [Event], missed: UInt64) {
        let oldest = last >= UInt64(capacity) ? last - UInt64(capacity) + 1 : 1
        let first = Swift.max(seq &+ 1, oldest)
        let missed = first > seq &+ 1 ? first - (seq &+ 1) : 0
        guard first <= last else { return ([], missed) }
        let end = Swift.min(last, first + UInt64(Swift.max(max, 1)) - 1)
        return ((first...end).map { ring[Int($0 % UInt64(capacity))] }, missed)
    }
}
