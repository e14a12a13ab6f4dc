/*
 * Bridge rules, service side: VLAN filtering and the reserved-group mask of a bridge, per-port
 * rules (VLANs, PVID, isolation, locking, MAC limit, split-horizon group) and static MAC entries.
 *
 * The service keeps the rules by port *name* on the bridge entry (as the config file writes them)
 * and pushes them into the forwarding engine whenever a port of that name is attached
 * (`installRules`, from makePort) and whenever they change, so an application port that comes and
 * goes, or a kernel port re-created after a restart, gets its VLANs and static entries back.
 * Everything here is the bridge owner's (or root's) to change; `vlan show` is for anyone the bridge
 * admits. A hostile owner can only hurt their own bridge: rules and static entries per bridge are
 * capped (`maxRules`), and every value is checked before anything changes.
 */
import Foundation
import SwaleConfig
import SwaleDatapath
import SwaleNames
import SwaleProtocol

extension Service {
    /// Port rules and static entries per bridge (each): a bound on what an owner can make us hold.
    static let maxRules = 4096

    /// The bridge and port named by "BRIDGE:PORT" (no pipe suffix).
    func rulesTarget(_ text: String, _ s: Session, _ op: String) throws -> (BridgeEntry, String) {
        let n = try PortName.parse(text)
        guard case .bridgePort(let bn, let pn) = n.base, n.pipe == nil else {
            throw ControlError(.invalidArgument, "\(op) takes BRIDGE:PORT (a port on a bridge), not '\(text)'")
        }
        return (try ownedBridge(bn, s, op), pn)
    }

    func rules(_ b: BridgeEntry, _ port: String) -> SwaleConfig.PortRules {
        b.portRules[port] ?? SwaleConfig.PortRules(port: port)
    }

    /// Stores a port's rules (dropping them when back to the defaults) and applies them if it is attached.
    func store(_ r: SwaleConfig.PortRules, on b: BridgeEntry) throws {
        if b.portRules[r.port] == nil && !r.isDefault && b.portRules.count >= Service.maxRules {
            throw ControlError(.limit, "bridge \(b.bridge.name) has rules for \(Service.maxRules) ports already")
        }
        b.portRules[r.port] = r.isDefault ? nil : r
        if let p = b.ports[r.port] { pushRules(r, port: p.index, on: b) }
    }

    func pushRules(_ r: SwaleConfig.PortRules, port index: Int, on b: BridgeEntry) {
        b.bridge.setVlans(
            port: index, r.effectiveVlans.map { (UInt16($0.vid), $0.untagged) }, pvid: UInt16(r.effectivePvid ?? 0))
        b.bridge.setPortRules(
            port: index, isolated: r.isolated, locked: r.locked, maxMacs: UInt32(r.maxMacs), horizon: UInt8(clamping: r.horizon))
    }

    /// A port of this name was just attached: its rules and static entries go in.
    /// (Also when the rules changed under an attached port: a port without rules gets the defaults.)
    func installRules(_ b: BridgeEntry, _ p: PortEntry) {
        pushRules(rules(b, p.name), port: p.index, on: b)
        for e in b.staticEntries where e.port == p.name {
            if !b.bridge.addStatic(mac: e.mac, vlan: UInt16(e.vlan), port: p.index) {
                log.warning(
                    "bridge \(b.bridge.name): static entry \(Names.formatMAC(e.mac)) vlan \(e.vlan) not installed: its table bucket is full of static entries"
                )
            }
        }
    }

    func ruleInfo(_ b: BridgeEntry, _ port: String) -> PortRulesInfo {
        let r = rules(b, port)
        let p = b.ports[port]
        var info = PortRulesInfo(
            bridge: b.bridge.name, port: port, attached: p != nil,
            vlans: r.effectiveVlans.sorted { $0.vid < $1.vid }.map {
                PortRulesInfo.Vlan(vid: $0.vid, pvid: $0.vid == r.effectivePvid, untagged: $0.untagged)
            },
            isolated: r.isolated, locked: r.locked, maxMacs: r.maxMacs,
            learned: p.map { b.bridge.learnedCount(port: $0.index) } ?? 0)
        info.horizon = r.horizon > 0 ? r.horizon : nil
        return info
    }

    // MARK: operations

    func setBridgeRules(_ b: BridgeEntry, vlanFiltering: Bool?, groupFwdMask: Int?) throws {
        var mask: UInt16?
        if let groupFwdMask {
            do { mask = try SwaleConfig.groupFwdMask(groupFwdMask) } catch { throw ControlError(.invalidArgument, "\(error)") }
        }
        if let mask {
            b.groupFwdMask = mask
            b.bridge.setGroupForwardMask(mask)
        }
        if let vlanFiltering {
            b.vlanFiltering = vlanFiltering
            b.bridge.setVlanFiltering(vlanFiltering)
            // Entries learned in one mode mean nothing in the other (VLAN 0 vs the real VLANs).
            b.bridge.fdbFlush(port: nil)
        }
        if mask != nil || vlanFiltering != nil {
            log.info(
                "bridge \(b.bridge.name): vlan filtering \(b.vlanFiltering ? "on" : "off"), group forward mask \(SwaleConfig.hex(Int(b.groupFwdMask)))"
            )
        }
    }

    func vid(_ v: Int) throws -> Int {
        guard SwaleConfig.vidRange.contains(v) else {
            throw ControlError(
                .invalidArgument,
                "VLAN \(v) out of range (\(SwaleConfig.vidRange.lowerBound)...\(SwaleConfig.vidRange.upperBound); 0 and 4095 are reserved)"
            )
        }
        return v
    }

    /// Like `bridge vlan add`: adds or updates one VLAN; --pvid moves the PVID to it; without
    /// --untagged the VLAN leaves tagged.
    func vlanAdd(_ a: VlanAdd, _ s: Session) throws -> PortRulesInfo {
        let (b, port) = try rulesTarget(a.port, s, VlanAdd.op)
        let v = try vid(a.vid)
        var r = rules(b, port)
        let pvidBefore = r.effectivePvid
        var list = r.effectiveVlans.filter { $0.vid != v }
        list.append(SwaleConfig.Vlan(vid: v, untagged: a.untagged ?? false))
        r.vlans = list.sorted { $0.vid < $1.vid }
        r.pvid = a.pvid == true ? v : (pvidBefore == v ? nil : pvidBefore)
        try store(r, on: b)
        return ruleInfo(b, port)
    }

    func vlanDel(_ a: VlanDel, _ s: Session) throws -> PortRulesInfo {
        let (b, port) = try rulesTarget(a.port, s, VlanDel.op)
        let v = try vid(a.vid)
        var r = rules(b, port)
        guard r.effectiveVlans.contains(where: { $0.vid == v }) else {
            throw ControlError(.notFound, "port \(b.bridge.name):\(port) is not in VLAN \(v)")
        }
        let pvidBefore = r.effectivePvid
        r.vlans = r.effectiveVlans.filter { $0.vid != v }
        r.pvid = pvidBefore == v ? nil : pvidBefore
        try store(r, on: b)
        return ruleInfo(b, port)
    }

    func vlanShow(_ bridge: String?, _ s: Session) throws -> [PortRulesInfo] {
        let bs: [BridgeEntry]
        if let bridge, !bridge.isEmpty { bs = [try usableBridge(bridge, s, VlanShow.op)] } else { bs = visibleBridges(s) }
        return bs.flatMap { b in
            Set(b.ports.keys).union(b.portRules.keys).sorted().map { ruleInfo(b, $0) }
        }
    }

    func portSet(_ a: PortSet, _ s: Session) throws -> PortRulesInfo {
        let (b, port) = try rulesTarget(a.port, s, PortSet.op)
        var r = rules(b, port)
        if let m = a.maxMacs {
            guard SwaleConfig.maxMacsRange.contains(m) else {
                throw ControlError(
                    .invalidArgument, "max-macs \(m) out of range (0...\(SwaleConfig.maxMacsRange.upperBound); 0: no limit)")
            }
            r.maxMacs = m
        }
        if let i = a.isolated { r.isolated = i }
        if let l = a.locked { r.locked = l }
        if let h = a.horizon { r.horizon = try horizonGroup(h) }
        try store(r, on: b)
        if a.horizon != nil, let p = b.ports[port] { tagTunnel(p, in: b) }
        log.info(
            "port \(b.bridge.name):\(port): isolated \(r.isolated) locked \(r.locked) max-macs \(r.maxMacs) horizon \(r.horizon)")
        return ruleInfo(b, port)
    }

    func staticVlan(_ b: BridgeEntry, _ v: Int?) throws -> Int {
        guard let v, v != 0 else { return 0 }
        return try vid(v)
    }

    func fdbAdd(_ a: FdbAdd, _ s: Session) throws -> StaticEntryInfo {
        let b = try ownedBridge(a.bridge, s, FdbAdd.op)
        let mac: UInt64
        do { mac = try SwaleConfig.staticMAC(a.mac) } catch { throw ControlError(.invalidArgument, "\(error)") }
        do { try Names.validatePortComponent(a.port) } catch { throw ControlError(.invalidArgument, "port: \(error)") }
        let vlan = try staticVlan(b, a.vlan)
        let entry = SwaleConfig.StaticEntry(mac: mac, port: a.port, vlan: vlan)
        let existing = b.staticEntries.firstIndex { $0.mac == mac && $0.vlan == vlan }
        if existing == nil && b.staticEntries.count >= Service.maxRules {
            throw ControlError(.limit, "bridge \(b.bridge.name) has \(Service.maxRules) static entries already")
        }
        if let p = b.ports[a.port], !b.bridge.addStatic(mac: mac, vlan: UInt16(vlan), port: p.index) {
            throw ControlError(
                .limit, "no room for \(Names.formatMAC(mac)) vlan \(vlan): its table bucket holds 8 static entries")
        }
        if let i = existing {
            // Moved to a port that is not attached: the old one must stop matching now.
            if b.ports[a.port] == nil { b.bridge.removeStatic(mac: mac, vlan: UInt16(vlan)) }
            b.staticEntries[i] = entry
        } else {
            b.staticEntries.append(entry)
        }
        log.info("bridge \(b.bridge.name): static entry \(Names.formatMAC(mac)) vlan \(vlan) on \(a.port)")
        var warning: String?
        if vlan != 0 && !b.vlanFiltering {
            warning =
                "bridge \(b.bridge.name) does not filter VLANs: its frames are in VLAN 0, so this entry matches nothing until `bridge set \(b.bridge.name) --vlan-filtering on`"
        } else if vlan == 0 && b.vlanFiltering {
            warning =
                "bridge \(b.bridge.name) filters VLANs: an entry without --vlan matches nothing while filtering is on"
        }
        return StaticEntryInfo(
            mac: Names.formatMAC(mac), port: a.port, vlan: vlan, attached: b.ports[a.port] != nil, warning: warning)
    }

    func fdbDel(_ a: FdbDel, _ s: Session) throws {
        let b = try ownedBridge(a.bridge, s, FdbDel.op)
        let mac: UInt64
        do { mac = try SwaleConfig.staticMAC(a.mac) } catch { throw ControlError(.invalidArgument, "\(error)") }
        let vlan = try staticVlan(b, a.vlan)
        guard let i = b.staticEntries.firstIndex(where: { $0.mac == mac && $0.vlan == vlan }) else {
            throw ControlError(.notFound, "bridge \(b.bridge.name) has no static entry for \(Names.formatMAC(mac)) vlan \(vlan)")
        }
        b.staticEntries.remove(at: i)
        b.bridge.removeStatic(mac: mac, vlan: UInt16(vlan))
        log.info("bridge \(b.bridge.name): static entry \(Names.formatMAC(mac)) vlan \(vlan) deleted")
    }

    // MARK: configuration

    /// The configured rules of a bridge (the file's, at start or reload).
    func applyRules(_ c: SwaleConfig.Bridge, to b: BridgeEntry) {
        b.vlanFiltering = c.vlanFiltering
        b.groupFwdMask = c.groupFwdMask
        b.bridge.setVlanFiltering(c.vlanFiltering)
        b.bridge.setGroupForwardMask(c.groupFwdMask)
        for old in b.staticEntries where !c.fdb.contains(old) { b.bridge.removeStatic(mac: old.mac, vlan: UInt16(old.vlan)) }
        b.portRules = Dictionary(c.portRules.map { ($0.port, $0) }, uniquingKeysWith: { a, _ in a })
        b.staticEntries = c.fdb
        for p in b.ports.values { installRules(b, p) }
    }

    func writeRules(_ b: BridgeEntry, into c: inout SwaleConfig.Bridge) {
        c.vlanFiltering = b.vlanFiltering
        c.groupFwdMask = b.groupFwdMask
        c.portRules = b.portRules.keys.sorted().compactMap { b.portRules[$0] }
        c.fdb = b.staticEntries
    }
}
