using PpcLivepatch.Diagnostics;

namespace PpcLivepatch.Elf;

/// <summary>
/// The signature <c>scripts/sign-file</c> appends to a kernel module: PKCS#7 data, a <c>struct module_signature</c>
/// and the marker. It covers every byte before it, so a module that is changed afterwards no longer verifies — and
/// the kernel refuses a module with a bad signature even when signatures are not enforced (kernel/module/signing.c).
/// </summary>
public static class ModuleSignature
{
    private static ReadOnlySpan<byte> Marker => "~Module signature appended~\n"u8;

    public static bool IsAppended(ReadOnlySpan<byte> module) => AppendedLength(module) > 0;

    /// <summary>
    /// PLP0018 for a signed input that was changed: the output carries no signature (ElfContainer leaves it out, a kept
    /// one would no longer match), so the module must be signed again afterwards. Null when the input is unsigned.
    /// </summary>
    public static Diagnostic? Dropped(ElfImage input, string output) => !IsAppended(input.Bytes.Span) ? null :
        new Diagnostic(DiagnosticCatalog.SignatureDropped,
            $"{input.Path} is a signed module; {output} is changed and carries no signature, so it loads as unsigned " +
                "(or not at all where signatures are enforced)",
            input.Path, Fix: "Sign the module after it has been changed: set LivepatchSign=true (kbuild mode), or " +
                "run the kernel's scripts/sign-file on the final module.");

    /// <summary>
    /// How many bytes at the end are the signature: the marker, the 12-byte <c>struct module_signature</c> before it
    /// (signer and key id lengths, and the big-endian length of the signature data), and what it counts. 0 when the
    /// module is unsigned or the trailer does not add up.
    /// </summary>
    public static int AppendedLength(ReadOnlySpan<byte> module)
    {
        const int infoSize = 12;
        if (!module.EndsWith(Marker) || module.Length < Marker.Length + infoSize) return 0;
        var info = module[^(Marker.Length + infoSize)..^Marker.Length];
        long length = Marker.Length + infoSize + (long)info[3] + info[4]
            + System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(info[8..]);
        return length <= module.Length ? (int)length : 0;
    }
}
