#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A malformed name (or bridge, port, interface, MAC address): what is wrong and where.
///
/// `position` is a 0-based offset in Characters into `input` (for every accepted name Characters
/// and bytes coincide, since only ASCII is accepted). It may equal `input.count` when something is
/// missing at the end, e.g. `vale0:` → "empty port name" at 6.
public struct NameError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public var position: Int
    public var input: String
    /// What was being parsed: "name", "bridge name", "port name", "pipe id", "interface name",
    /// "MAC address".
    public var subject: String

    public init(message: String, position: Int, input: String, subject: String = "name") {
        self.message = message
        self.position = position
        self.input = input
        self.subject = subject
    }

    /// e.g. `invalid name 'vale0:a<': empty pipe id at position 8`. Control characters in the input
    /// are escaped and very long inputs are shortened, so the text is safe to log.
    public var description: String {
        "invalid \(subject) '\(NameError.quoted(input))': \(message) at position \(position)"
    }

    /// Input shown in messages: at most `limit` Characters, with invisible characters escaped.
    static func quoted(_ s: String, limit: Int = 64) -> String {
        var out = ""
        var count = 0
        for c in s {
            if count == limit {
                out += "…"
                break
            }
            count += 1
            out += escaped(c)
        }
        return out
    }

    static func escaped(_ c: Character) -> String {
        var out = ""
        for scalar in c.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\\": out += "\\\\"
            default:
                if isInvisible(scalar) {
                    out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " { return false }
        if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) { return true }
        if scalar.properties.isWhitespace { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .surrogate, .privateUse, .lineSeparator, .paragraphSeparator:
            return true
        default:
            return false
        }
    }
}

extension NameError: LocalizedError {
    public var errorDescription: String? { description }
}
