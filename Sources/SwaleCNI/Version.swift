/*
 * Version — which CNI spec versions swale-cni speaks, and how they compare.
 *
 * Configs of 0.3.0 ... 1.1.0 are accepted; results are written in the config's version (0.3.x and
 * 0.4.0 give each IP a "version", 1.x do not). CHECK exists from 0.4.0, STATUS and GC from 1.1.0.
 */
public enum CNIVersion {
    public static let supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    public static let current = "1.1.0"

    /// Numeric parts of "1.0.0"; nil if it is not a version.
    static func parts(_ v: String) -> [Int]? {
        let p = v.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard p.count == 3, p.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        return p.map { $0! }
    }

    /// a < b, for versions that parse.
    public static func less(_ a: String, _ b: String) -> Bool {
        guard let x = parts(a), let y = parts(b) else { return false }
        return x.lexicographicallyPrecedes(y)
    }

    public static func atLeast(_ v: String, _ min: String) -> Bool { !less(v, min) }

    /// Checks a config's version; the spec's error 1 otherwise.
    public static func check(_ v: String) throws {
        guard supported.contains(v) else {
            throw CNIError(
                CNIError.incompatibleVersion, "incompatible CNI version",
                details: "config version \(v); swale-cni supports \(supported.joined(separator: ", "))")
        }
    }

    /// The version to speak to a delegated plugin: ours when it knows it, else the newest it knows
    /// whose results read the same (0.3.0 and later); nil when there is none.
    public static func forDelegate(_ ours: String, theirs: [String]) -> String? {
        if theirs.contains(ours) { return ours }
        return theirs.filter { parts($0) != nil && atLeast($0, "0.3.0") && !less(ours, $0) }
            .max { less($0, $1) }
    }
}
