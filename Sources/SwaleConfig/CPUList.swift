/*
 * CPUList — a set of CPUs written the way Linux writes them (taskset -c, /sys/devices/system/cpu/
 * online, the cpuset files, Cpus_allowed_list in /proc/PID/status): numbers and ranges separated by
 * commas, "0", "2-3", "0,4-7". `forwardingCPUs` (config file) and `--forwarding-cpus` (swaled) take
 * this form; `render` writes a set back in it, ranges merged, so a dump reads like the kernel's own.
 */
public enum CPUList {
    /// The largest CPU number a set may hold (glibc's CPU_SETSIZE is 1024).
    public static let maxCPU = 1023

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// The CPUs of `text`, ascending, each once. Every error names the part that is wrong.
    public static func parse(_ text: String) throws -> [Int] {
        guard !text.isEmpty else { throw ParseError(description: "a CPU list cannot be empty (say \"0\" or \"0-1,3\")") }
        var cpus = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else {
                throw ParseError(description: "'\(text)' has an empty item (two commas, or one at an end)")
            }
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count <= 2, let first = ends.first.flatMap(number), let last = ends.last.flatMap(number) else {
                throw ParseError(description: "'\(part)' is not a CPU number or a range like 2-3")
            }
            for cpu in [first, last] where cpu > maxCPU {
                throw ParseError(description: "CPU \(cpu) is beyond \(maxCPU), the largest CPU number Swale handles")
            }
            guard first <= last else { throw ParseError(description: "'\(part)' is a descending range (write \(last)-\(first))") }
            cpus.formUnion(first...last)
        }
        return cpus.sorted()
    }

    /// ASCII decimal digits only (no sign, no spaces, no hex, no other scripts' digits); nil
    /// otherwise or when absurdly long (still long enough for "beyond" to name a big number).
    private static func number(_ s: Substring) -> Int? {
        guard !s.isEmpty, s.utf8.count <= 9, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(s)
    }

    /// `cpus` in the list form, ascending, consecutive CPUs merged into ranges ([0, 1, 2, 5] -> "0-2,5").
    public static func render(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let sorted = Set(cpus).sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(j == i ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}
