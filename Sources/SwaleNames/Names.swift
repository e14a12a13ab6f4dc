/// Validation of single name components and MAC addresses. The rules are those of the grammar at the
/// top of PortName.swift; errors are `NameError`s whose position is relative to the string passed in.
public enum Names {
    /// Every bridge name starts with this (netmap's NM_BDG_NAME).
    public static let bridgePrefix = "vale"
    /// Limit for a bridge, port, pipe id or interface name, in bytes (Linux IFNAMSIZ - 1).
    public static let maxComponentBytes = 15

    /// `vale` followed by `[0-9A-Za-z_]*`, at most 15 bytes (bare `vale` is a bridge too).
    public static func validateBridge(_ s: String) throws(NameError) {
        try NameParser(s, subject: "bridge name").validate(.bridge)
    }

    /// A port on a bridge: `[0-9A-Za-z_]+`, at most 15 bytes.
    public static func validatePortComponent(_ s: String) throws(NameError) {
        try NameParser(s, subject: "port name").validate(.port)
    }

    /// A pipe id: `[0-9A-Za-z_]+`, at most 15 bytes.
    public static func validatePipeID(_ s: String) throws(NameError) {
        try NameParser(s, subject: "pipe id").validate(.pipeID)
    }

    /// A Linux interface name: 1 to 15 bytes, not "." or "..", no '/', ':' or whitespace. Swale is
    /// stricter than Linux: only letters, digits, '_', '.' and '-' (see PortName.swift). A name that
    /// starts with `vale` passes this check (Linux accepts it) but cannot be written as an interface
    /// `PortName`.
    public static func validateInterfaceName(_ s: String) throws(NameError) {
        try NameParser(s, subject: "interface name").validate(.interface)
    }

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (one separator kind, exactly two hex digits
    /// per octet, either case) into a 48-bit value with the first octet in the most significant byte:
    /// `01:02:03:04:05:06` → `0x0102_0304_0506`.
    public static func parseMAC(_ s: String) throws(NameError) -> UInt64 {
        let chars = Array(s)
        func fail(_ message: String, _ position: Int) -> NameError {
            NameError(message: message, position: position, input: s, subject: "MAC address")
        }
        guard !chars.isEmpty else { throw fail("empty MAC address", 0) }

        var value: UInt64 = 0
        var separator: Character? = nil
        var octets = 0  // completed octets
        var digits = 0  // hex digits in the current octet
        var octetStart = 0
        for (i, c) in chars.enumerated() {
            if c == ":" || c == "-" {
                if let separator, separator != c {
                    throw fail("mixed separators: expected '\(separator)', found '\(c)'", i)
                }
                separator = c
                if digits != 2 {
                    throw fail(
                        digits == 0 ? "empty octet" : "octet '\(String(chars[octetStart..<i]))' must have 2 hex digits",
                        digits == 0 ? i : octetStart)
                }
                octets += 1
                if octets == 6 {
                    throw fail("too many octets (a MAC address has 6)", i)
                }
                digits = 0
                octetStart = i + 1
            } else if c.isASCII, let nibble = c.hexDigitValue {
                if digits == 2 {
                    throw fail("octet has more than 2 hex digits (separate octets with ':' or '-')", i)
                }
                value = value << 4 | UInt64(nibble)
                digits += 1
            } else if c.isWhitespace {
                throw fail("whitespace \(NameParser.describe(c)) is not allowed", i)
            } else {
                throw fail("invalid character \(NameParser.describe(c)) (expected a hex digit, ':' or '-')", i)
            }
        }
        if digits != 2 {
            if digits == 0 {
                throw fail(octets == 0 ? "empty MAC address" : "missing octet after the last separator", chars.count)
            }
            throw fail("octet '\(String(chars[octetStart...]))' must have 2 hex digits", octetStart)
        }
        octets += 1
        if octets != 6 {
            throw fail("expected 6 octets, found \(octets)", chars.count)
        }
        return value
    }

    /// FNV-1a of `bytes`: the stable hash behind names derived from other names (a swaled instance
    /// from its socket path, a container's host interface from its attachment).
    public static func fnv1a<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// Formats the low 48 bits of `v` as lowercase `aa:bb:cc:dd:ee:ff` (higher bits are ignored).
    public static func formatMAC(_ v: UInt64) -> String {
        let hexDigits: [Character] = Array("0123456789abcdef")
        var out = ""
        out.reserveCapacity(17)
        for octet in 0..<6 {
            let byte = Int((v >> UInt64(8 * (5 - octet))) & 0xFF)
            if octet > 0 { out.append(":") }
            out.append(hexDigits[byte >> 4])
            out.append(hexDigits[byte & 0xF])
        }
        return out
    }
}
