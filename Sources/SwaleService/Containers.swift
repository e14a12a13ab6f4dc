/*
 * Containers — veth ports that belong to a container runtime's attachment (swale-cni).
 *
 * A CNI ADD asks for an ordinary veth port whose peer is born inside the container's namespace
 * under the runtime's interface name, plus the attachment's identity (container id, CNI network
 * name) and its rules (access VLAN, tagged VLANs, isolation). The identity and the rules travel in
 * the interface's owner tag like every other field of a port Swale created, so a restart of swaled
 * re-adopts the port *with* its VLANs and isolation: a container never comes back in VLAN 1 or
 * un-isolated. The rules are stored by port name like any port's (BridgeRules.swift) and go away with
 * the port; such ports are the runtime's, so `config dump` leaves them out.
 */
import Glibc
import SwaleConfig
import SwaleProtocol

extension Service {
    /// Copies and checks a request's container attachment (if any) into the port spec.
    func takeAttachment(_ req: PortAdd, into spec: inout SwaleConfig.Port) throws {
        let hasRules = req.vlan != nil || req.trunk != nil || req.isolated != nil
        guard req.container != nil || req.network != nil || hasRules else { return }
        guard spec.kind == .veth, let c = req.container, let n = req.network else {
            throw ControlError(
                .invalidArgument,
                "container id, network, vlan, trunk and isolated describe a container attachment: a veth port with both a container id and a network name"
            )
        }
        try Service.checkAttachmentField(c, "container id")
        try Service.checkAttachmentField(n, "network name")
        if let v = req.vlan, !SwaleConfig.vidRange.contains(v) {
            throw ControlError(.invalidArgument, "vlan \(v) is not in 1-4094")
        }
        if let t = req.trunk {
            guard !t.isEmpty else { throw ControlError(.invalidArgument, "trunk lists no VLAN") }
            if let bad = t.first(where: { !SwaleConfig.vidRange.contains($0) }) {
                throw ControlError(.invalidArgument, "trunk VLAN \(bad) is not in 1-4094")
            }
            if let v = req.vlan, t.contains(v) {
                throw ControlError(.invalidArgument, "vlan \(v) is the access VLAN (untagged); it cannot also be in the trunk")
            }
            spec.trunk = Array(Set(t)).sorted()
        }
        spec.container = c; spec.network = n; spec.vlan = req.vlan; spec.isolated = req.isolated
        let tag = OwnerTag(instance: ownerInstance, origin: .cli, bridge: req.bridge, spec: spec)
        let lost = tag.encoded.omitted.filter { ["peer", "container", "network", "vlan", "isolated", "trunk"].contains($0) }
        guard lost.isEmpty else {
            throw ControlError(
                .invalidArgument,
                "the attachment's \(lost.joined(separator: ", ")) would not fit in the interface's owner tag (255 bytes), so a restart would lose it: use fewer trunk ranges or shorter names"
            )
        }
    }

    /// Container ids and CNI network names: what the CNI spec allows (letters, digits, `_`, `.`,
    /// `-`, starting with a letter or digit), at most 128 bytes.
    static func checkAttachmentField(_ value: String, _ what: String) throws {
        let bytes = Array(value.utf8)
        func alnum(_ c: UInt8) -> Bool { c < 128 && isalnum(Int32(c)) != 0 }
        let ok =
            (1...128).contains(bytes.count) && alnum(bytes[0])
            && bytes.allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        guard ok else {
            throw ControlError(
                .invalidArgument,
                "\(what) '\(LogText.clean(value))' must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        }
    }

    /// A container attachment's rules, from its spec: access VLAN as PVID untagged, trunk VLANs tagged.
    static func attachmentRules(_ spec: SwaleConfig.Port, port: String) -> SwaleConfig.PortRules {
        var r = SwaleConfig.PortRules(port: port)
        if spec.vlan != nil || spec.trunk != nil {
            var vlans: [SwaleConfig.Vlan] = []
            if let v = spec.vlan { vlans.append(SwaleConfig.Vlan(vid: v, untagged: true)) }
            for t in spec.trunk ?? [] { vlans.append(SwaleConfig.Vlan(vid: t, untagged: false)) }
            r.vlans = vlans
            r.pvid = spec.vlan
        }
        r.isolated = spec.isolated ?? false
        return r
    }
}
