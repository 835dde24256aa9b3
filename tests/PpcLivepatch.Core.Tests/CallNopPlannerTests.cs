using PpcLivepatch.AssemblerRoute;

namespace PpcLivepatch.Tests;

/// <summary>The assembler route's site rules on assembly text written to each case (the compilers' own output is
/// covered by AssemblerRouteTests and RouteOracleTests).</summary>
[TestClass]
public sealed class CallNopPlannerTests
{
    private const string Text = """
        	.file 1 "f.c"
        	.section	.text.f,"ax",@progbits
        	.type	f, @function
        	.type	g, @function
        f:
        	.loc 1 7 3
        	bl g
        	bl g
        	nop
        	bl g
        .L3:
        	nop
        	bl 1f
        1:	mflr 3
        	bl .L0$pb
        .L0$pb:
        	bl .+8
        	bl h@notoc
        	bl _mcount
        	bl _savegpr0_29
        	bl local_label
        local_label:
        	bl g; mr 3,4
        	.loc 1 99999999999 1
        	.pushsection .text.other,"ax",@progbits
        g:
        	bl ext
        	.popsection
        	bl ext
        #APP
        # 12 "f.c" 1
        	bl ext
        # 0 "" 2
        #NO_APP
        """;

    [TestMethod]
    public void ANopGoesOnlyAfterACallToAFunctionThatHasNone()
    {
        var asm = AssemblyText.Parse(Text);
        var plan = CallNopPlanner.Plan(asm, NopRules.For([], allLocal: true));
        // The first bl g; the third (a label comes before its nop: a join point, not a free nop); bl ext in
        // .text.other and back in .text.f. Never a label, .+8, @notoc, _mcount or _savegpr; never a call that shares
        // its line; never a call that already has its nop.
        Assert.AreEqual("g@.text.f:7, g@.text.f:10, ext@.text.other:27, ext@.text.f:29", string.Join(", ",
            plan.Nops.Select(n => $"{n.Callee}@{n.Call.Section}:{n.Call.Line + 1}")));
        Assert.AreEqual(7, plan.Nops[0].Call.Source!.Line);
        Assert.AreEqual("f", plan.Nops[0].Call.Function);
        // A line number too large for one is no line (the last one read stays) instead of failing the parse.
        Assert.AreEqual(7, plan.Nops[2].Call.Source!.Line);
        var refused = plan.Refused.Single();
        Assert.AreEqual(("ext", "f.c", 12), (refused.Callee, refused.Call.Source!.File, refused.Call.Source.Line));
        Assert.IsTrue(asm.FunctionsWithInlineAssembly.SetEquals(["f"]));

        string edited = CallNopPlanner.Apply(asm, plan with { Refused = [] });
        var lines = edited.Split('\n');
        Assert.AreEqual(Text.Split('\n').Length + 4, lines.Length);
        Assert.AreEqual(("\tbl g", "\tnop", "\tbl g", "\tnop"), (lines[6], lines[7], lines[8], lines[9]));
    }

    [TestMethod]
    public void NamedCalleesOnly()
    {
        var plan = CallNopPlanner.Plan(AssemblyText.Parse(Text), NopRules.For(["ext"], allLocal: false));
        Assert.AreEqual(2, plan.Nops.Count);
        Assert.IsTrue(plan.Nops.All(n => n.Callee == "ext"));
    }
}
