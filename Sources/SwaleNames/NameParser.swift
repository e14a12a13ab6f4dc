// The scanner behind `PortName.parse` and the `Names.validate…` functions. The grammar is described
// at the top of PortName.swift. The input is turned into an array of Characters once; every index is
// bounds-checked, so no input can trap.

/// The kinds of name components, each with its own character set.
enum Segment {
    case bridge, port, pipeID, interface

    var label: String {
        switch self {
        case .bridge: return "bridge name"
        case .port: return "port name"
        case .pipeID: return "pipe id"
        case .interface: return "interface name"
        }
    }

    var allowedText: String {
        switch self {
        case .bridge: return "after 'vale' only letters, digits and '_'"
        case .port, .pipeID: return "letters, digits and '_'"
        case .interface: return "letters, digits, '_', '.' and '-'"
        }
    }

    func allows(_ c: Character) -> Bool {
        if NameParser.isWord(c) { return true }
        return self == .interface && (c == "." || c == "-")
    }
}

struct NameParser {
    let chars: [Character]
    let input: String
    let subject: String

    static let pipeSeparators: Set<Character> = ["<", ">", "{", "}"]

    init(_ input: String, subject: String) {
        self.input = input
        self.chars = Array(input)
        self.subject = subject
    }

    func error(_ message: String, at position: Int) -> NameError {
        NameError(message: message, position: position, input: input, subject: subject)
    }

    // MARK: character classes

    static func isWord(_ c: Character) -> Bool {
        guard c.isASCII, let v = c.asciiValue else { return false }
        return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
    }

    static func isDigit(_ c: Character) -> Bool {
        guard c.isASCII, let v = c.asciiValue else { return false }
        return v >= 0x30 && v <= 0x39
    }

    static func isControl(_ c: Character) -> Bool {
        c.unicodeScalars.contains {
            $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.properties.generalCategory == .control
        }
    }

    /// A character as shown in messages: `'&'`, `' ' (space)`, `U+0009`, `'é' (U+00E9)`.
    static func describe(_ c: Character) -> String {
        let codes = c.unicodeScalars.map { scalar -> String in
            let hex = String(scalar.value, radix: 16, uppercase: true)
            return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }.joined(separator: " ")
        if c == " " { return "' ' (space)" }
        if c.isASCII, let v = c.asciiValue, v > 0x20, v < 0x7F { return "'\(c)'" }
        if c.isWhitespace || isControl(c) { return codes }
        return "'\(NameError.escaped(c))' (\(codes))"
    }

    func hasPrefix(_ prefix: String) -> Bool {
        var i = 0
        for p in prefix {
            guard i < chars.count, chars[i] == p else { return false }
            i += 1
        }
        return true
    }

    // MARK: scanning

    /// Advances from `start` over characters legal in `segment`, stopping (without error) at the end
    /// or at a character in `stops`. Any other character is an error.
    func scan(from start: Int, _ segment: Segment, stops: Set<Character> = []) throws(NameError) -> Int {
        var i = start
        while i < chars.count {
            let c = chars[i]
            if stops.contains(c) { break }
            if !segment.allows(c) { throw illegal(at: i, in: segment) }
            i += 1
        }
        return i
    }

    /// Text of a netmap suffix starting at `i`: the marker and the run of matching characters after it.
    func suffix(at i: Int, while matches: (Character) -> Bool) -> String {
        var s = String(chars[i])
        var j = i + 1
        while j < chars.count, matches(chars[j]) {
            if j - i >= 12 {
                s += "…"
                break
            }
            s.append(chars[j])
            j += 1
        }
        return s
    }

    /// The error for a character at `i` that is not allowed in `segment`.
    func illegal(at i: Int, in segment: Segment) -> NameError {
        let c = chars[i]
        if c.isWhitespace {
            return error("whitespace \(Self.describe(c)) is not allowed", at: i)
        }
        if Self.isControl(c) {
            return error("control character \(Self.describe(c)) is not allowed", at: i)
        }
        if !c.isASCII {
            return error("non-ASCII character \(Self.describe(c)) is not allowed in a \(segment.label)", at: i)
        }
        if segment != .bridge {
            switch c {
            case "*":
                return error("ring selection suffix '*' is not supported", at: i)
            case "^":
                return error("ring selection suffix '\(suffix(at: i, while: Self.isDigit))' is not supported", at: i)
            case "/":
                return error("ring selection suffix '\(suffix(at: i, while: Self.isWord))' is not supported", at: i)
            case "@":
                return error(
                    "netmap suffix '\(suffix(at: i, while: Self.isWord))' (memory region or option) is not supported",
                    at: i)
            case "-" where i + 1 < chars.count && Self.isDigit(chars[i + 1]):
                return error("ring selection suffix '\(suffix(at: i, while: Self.isDigit))' is not supported", at: i)
            case ":" where segment == .interface:
                return error("':' is not allowed in an interface name", at: i)
            case "%" where segment == .interface:
                return error("'%' is not allowed in an interface name (the kernel treats it as a name template)", at: i)
            default:
                break
            }
        }
        return error("illegal character \(Self.describe(c)) in \(segment.label) (allowed: \(segment.allowedText))", at: i)
    }

    /// Every component is ASCII once scanned, so its Character count is its byte count.
    func checkLength(from start: Int, to end: Int, _ segment: Segment) throws(NameError) {
        let length = end - start
        if length > Names.maxComponentBytes {
            throw error(
                "\(segment.label) is \(length) bytes long, the limit is \(Names.maxComponentBytes)",
                at: start + Names.maxComponentBytes)
        }
    }

    // MARK: whole names

    static func parsePortName(_ text: String) throws(NameError) -> PortName {
        let p = NameParser(text, subject: "name")
        return try p.parsePortName()
    }

    func parsePortName() throws(NameError) -> PortName {
        let n = chars.count
        guard n > 0 else { throw error("empty name", at: 0) }
        if hasPrefix("netmap:") {
            throw error("the 'netmap:' prefix is not used, write the interface name alone (e.g. 'eth0')", at: 0)
        }

        let base: PortName.Base
        var i: Int
        if hasPrefix(Names.bridgePrefix) {
            let prefixLength = Names.bridgePrefix.count
            let bridgeEnd = try scan(from: prefixLength, .bridge, stops: Self.pipeSeparators.union([":"]))
            try checkLength(from: 0, to: bridgeEnd, .bridge)
            let bridge = String(chars[0..<bridgeEnd])
            guard bridgeEnd < n, chars[bridgeEnd] == ":" else {
                throw error("missing ':PORT' after bridge name '\(bridge)'", at: bridgeEnd)
            }
            let portStart = bridgeEnd + 1
            let portEnd = try scan(from: portStart, .port, stops: Self.pipeSeparators.union([":", "/"]))
            if portEnd < n, chars[portEnd] == ":" {
                throw error("second ':' (a name has at most one BRIDGE:PORT separator)", at: portEnd)
            }
            if portEnd == portStart {
                throw error("empty port name after ':'", at: portStart)
            }
            try checkLength(from: portStart, to: portEnd, .port)
            base = .bridgePort(bridge: bridge, port: String(chars[portStart..<portEnd]))
            i = portEnd
            if i < n, chars[i] == "/" {
                // netmap's monitor suffixes: /r, /t, /rt (or /tr); nothing may follow.
                let rest = String(chars[(i + 1)...])
                if let m = PortName.Monitor(suffix: rest) { return PortName(base: base, monitor: m) }
                if rest == "z" || rest.hasPrefix("z") && PortName.Monitor(suffix: String(rest.dropFirst())) != nil {
                    throw error("zero-copy monitors ('/z') are not supported; use /r, /t or /rt (copies)", at: i)
                }
                throw illegal(at: i, in: .port)
            }
        } else {
            let end = try scan(from: 0, .interface, stops: Self.pipeSeparators.union([":"]))
            if end < n, chars[end] == ":" {
                throw error(
                    "':' is only allowed in bridge port names ('valeX:PORT'); '\(String(chars[0..<end]))' "
                        + "does not start with 'vale', so it is an interface name, which cannot contain ':'",
                    at: end)
            }
            if end == 0 {
                throw error("empty name before pipe suffix \(Self.describe(chars[0]))", at: 0)
            }
            let name = String(chars[0..<end])
            if name == "." || name == ".." {
                throw error("'\(name)' is not a valid interface name", at: 0)
            }
            try checkLength(from: 0, to: end, .interface)
            base = .interface(name)
            i = end
        }

        var pipe: (role: PipeRole, id: String)? = nil
        if i < n {
            // The base scans above stop only at the end or at a pipe separator.
            let separator = chars[i]
            let role: PipeRole = (separator == "<" || separator == "{") ? .master : .slave
            let idStart = i + 1
            let idEnd = try scan(from: idStart, .pipeID, stops: Self.pipeSeparators)
            if idEnd == idStart {
                throw error("empty pipe id", at: idStart)
            }
            if idEnd < n {
                throw error(
                    "second pipe suffix \(Self.describe(chars[idEnd])) (a name has at most one pipe end)", at: idEnd)
            }
            try checkLength(from: idStart, to: idEnd, .pipeID)
            pipe = (role, String(chars[idStart..<idEnd]))
            i = idEnd
        }
        return PortName(base: base, pipe: pipe)
    }

    // MARK: single components

    func validate(_ segment: Segment) throws(NameError) {
        guard !chars.isEmpty else { throw error("empty \(segment.label)", at: 0) }
        var start = 0
        if segment == .bridge {
            guard hasPrefix(Names.bridgePrefix) else {
                throw error("a bridge name must start with '\(Names.bridgePrefix)'", at: 0)
            }
            start = Names.bridgePrefix.count
        }
        let end = try scan(from: start, segment)
        if segment == .interface, input == "." || input == ".." {
            throw error("'\(input)' is not a valid interface name", at: 0)
        }
        try checkLength(from: 0, to: end, segment)
    }
}
