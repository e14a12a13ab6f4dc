// Kernel ports: TAP devices, veth pairs and existing interfaces as bridge ports (bwrap adapters).
import Foundation
import SwaleControl
import SwaleMemory
import SwaleNames

extension Service {
    func addKernelPort(_ req: Request, reuseExisting: Bool = false) throws -> PortInfo {
        throw ServiceError("kernel ports are not available in this build")
    }

    func attachPort(_ req: Request) throws -> PortInfo {
        throw ServiceError("kernel ports are not available in this build")
    }

    func deletePort(bridge: String, port: String) throws {
        let b = try bridgeEntry(bridge)
        guard let p = b.ports[port] else { throw ServiceError("no port '\(port)' on bridge '\(bridge)'") }
        if p.kind == .app {
            if let pid = p.openPid { throw ServiceError("port \(p.fullName) is held open by pid \(pid); it goes away when that application closes it") }
            if p.pipes > 0 { throw ServiceError("port \(p.fullName) has \(p.pipes) open pipe(s)") }
        }
        removePortEntry(p, from: b)
    }
}
