import CSwaleSys
/*
 * Sandbox — what the plugin does inside the container's network namespace: bring the interface
 * up, add the IPAM addresses and routes, announce each IPv4 address with a gratuitous ARP (peers
 * holding a stale entry for a re-added address — podman's `network reload` — learn the MAC at once),
 * and, for CHECK, read it all back.
 *
 * Each step runs on a helper thread that entered the namespace (Netlink.inNamespace), so this
 * process's own namespace never changes.
 */
import Foundation
import Glibc
import SwaleKernel

public enum Sandbox {
    /// Up, addresses, routes (a route without a gateway takes its family's gateway from the IPs).
    /// Returns the interface's MAC.
    public static func configure(netns: String, ifname: String, result: CNIResult) throws -> String {
        do {
            return try Netlink.inNamespace(netns) { nl in
                try nl.setUp(ifname, true)
                for ip in result.ips { try nl.addAddress(link: ifname, cidr: ip.address, noDAD: true) }
                for r in result.routes {
                    let v6 = r.dst.contains(":")
                    let gw = r.gw ?? result.ips.first { $0.isIPv6 == v6 && $0.gateway != nil }?.gateway
                    try nl.addRoute(link: ifname, destination: r.dst, gateway: gw)
                }
                guard let info = try nl.linkInfo(name: ifname) else {
                    throw CNIError(CNIError.sandboxFailure, "\(ifname) is not in \(netns) any more")
                }
                for ip in result.ips where !ip.isIPv6 {
                    announce(ifindex: info.ifindex, mac: info.mac, address: String(ip.address.split(separator: "/")[0]))
                }
                return info.macString
            }
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(CNIError.sandboxFailure, "configuring \(ifname) in \(netns) failed", details: "\(error)")
        }
    }

    /// The interface as it is now: nil if it is not there.
    public static func inspect(netns: String, ifname: String) throws -> (mac: String, up: Bool, addresses: [String])? {
        try Netlink.inNamespace(netns) { nl in
            guard let info = try nl.linkInfo(name: ifname) else { return nil }
            return (info.macString, info.isUp, try nl.addresses(link: ifname))
        }
    }

    /// One gratuitous ARP request (sender and target both `address`) to broadcast; best effort.
    static func announce(ifindex: Int32, mac: [UInt8], address: String) {
        var ip = in_addr()
        guard mac.count == 6, inet_pton(AF_INET, address, &ip) == 1 else { return }
        let fd = swale_packet_open()
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard swale_packet_bind(fd, ifindex) == 0 else { return }
        let ipBytes = withUnsafeBytes(of: ip.s_addr) { Array($0) }
        var frame: [UInt8] = Array(repeating: 0xff, count: 6) + mac + [0x08, 0x06]
        frame += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]  // Ethernet/IPv4, request
        frame += mac + ipBytes + Array(repeating: 0, count: 6) + ipBytes
        frame += Array(repeating: 0, count: 60 - frame.count)
        _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    }
}
