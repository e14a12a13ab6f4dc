#!/bin/sh
# Checks that Sources, Tests and Package.swift are formatted as .swift-format says (swift-format is
# part of the Swift toolchain). Exits non-zero on any finding. To fix the findings in place:
#   swift format format --recursive --in-place Sources Tests Package.swift
# The formatter does not move an end-of-line comment that overruns the line limit: move such comments by hand.
# .swift-format: 4-space indent, 130 columns, existing line breaks respected; swift-format's default
# rules, minus those that would rewrite the code's usual style or names rather than its layout:
# DoNotUseSemicolons and OneVariableDeclarationPerLine (short `a; b` and `let x = 0, y = 0` lines),
# NoBlockComments (file headers are block comments), AlwaysUseLowerCamelCase (names that mirror JSON
# keys and C fields), ReplaceForEachWithForLoop and OnlyOneTrailingClosureArgument.
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
if swift format lint --strict --recursive --parallel Sources Tests Package.swift; then
    echo "format-check: clean"
else
    echo "format-check: findings above; fix with: swift format format --recursive --in-place Sources Tests Package.swift" >&2
    exit 1
fi
