/*
 * Config — the declarative service configuration (Config/swale.json): bridges with their settings
 * and their kernel ports. Applied at start; applying it again after a restart picks up the
 * interfaces that are still there (a TAP or veth Swale created earlier is re-attached, not re-made).
 */
import Foundation
import SwaleControl

public struct ServiceConfigFile: Codable, Sendable {
    public struct PortSpec: Codable, Sendable {
        public var kind: String           // tap, veth, attach
        public var name: String
        public var peer: String?
        public var netns: String?
        public var address: String?
        public var mtu: Int?
        public var mac: String?
    }
    public struct BridgeSpec: Codable, Sendable {
        public var name: String
        public var agingSeconds: Int?
        public var ports: [PortSpec]?
    }
    public var socket: String?
    public var slots: Int?
    public var batch: Int?
    public var busyPollMicros: Int?
    public var pollMode: String?
    public var maxPorts: Int?
    public var fdbCapacity: Int?
    public var bridges: [BridgeSpec]?
    public init() {}

    public static func load(path: String) throws -> ServiceConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw ServiceError("cannot read config file \(path)") }
        do { return try JSONDecoder().decode(ServiceConfigFile.self, from: data) } catch {
            throw ServiceError("config file \(path) is not valid: \(error)")
        }
    }
}

extension Service {
    /// Creates the configured bridges and ports; errors are logged per item, the rest still applies.
    public func apply(_ cfg: ServiceConfigFile) {
        for b in cfg.bridges ?? [] {
            lock.lock()
            do {
                let e = try addBridge(b.name, mustBeNew: false)
                if let a = b.agingSeconds { e.bridge.setAging(UInt32(a)) }
            } catch { log.error("config: bridge \(b.name): \(error)") }
            lock.unlock()
            for p in b.ports ?? [] {
                var r = Request(op: p.kind == "attach" ? "port.attach" : "port.add")
                r.bridge = b.name
                r.kind = p.kind
                r.port = p.name
                r.ifname = p.name
                r.peer = p.peer
                r.netns = p.netns
                r.address = p.address
                r.mtu = p.mtu
                r.mac = p.mac
                lock.lock()
                do {
                    _ = try (p.kind == "attach" ? attachPort(r) : addKernelPort(r, reuseExisting: true))
                } catch { log.error("config: port \(p.name) on \(b.name): \(error)") }
                lock.unlock()
            }
        }
    }
}
