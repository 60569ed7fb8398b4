// Minimal stand-in for the KellermanSoftware.CompareNetObjects NuGet package used by the MBXP C#
// (MBCSP) tests: CompareLogic.Compare(a, b).AreEqual with deep, type-strict comparison of
// collections, dictionaries, tuples and public members.
using System;
using System.Collections;
using System.Reflection;

namespace KellermanSoftware.CompareNetObjects
{
    public class ComparisonConfig
    {
        public int MaxDifferences { get; set; }
        public bool IgnoreObjectTypes { get; set; }
        public bool IgnoreCollectionOrder { get; set; }
    }

    public class ComparisonResult
    {
        public bool AreEqual { get; internal set; }
        public string DifferencesString { get { return AreEqual ? "" : "objects differ"; } }
    }

    public class CompareLogic
    {
        public ComparisonConfig Config { get; set; }
        public CompareLogic() { Config = new ComparisonConfig(); }
        public CompareLogic(ComparisonConfig config) { Config = config; }

        public ComparisonResult Compare(object expected, object actual)
        {
            var r = new ComparisonResult();
            r.AreEqual = Equal(expected, actual, 0);
            return r;
        }

        bool Equal(object a, object b, int depth)
        {
            if (depth > 64) return false;
            if (a == null || b == null) return a == null && b == null;
            Type ta = a.GetType(), tb = b.GetType();
            if (!Config.IgnoreObjectTypes && ta != tb)
            {
                bool bothEnum = a is IEnumerable && b is IEnumerable && !(a is string) && !(b is string);
                if (!bothEnum) return false;
            }
            if (a is string || ta.IsPrimitive || a is decimal || ta.IsEnum) return a.Equals(b);
            if (a is IDictionary && b is IDictionary)
            {
                var da = (IDictionary)a; var db = (IDictionary)b;
                if (da.Count != db.Count) return false;
                foreach (DictionaryEntry e in da)
                {
                    if (!db.Contains(e.Key)) return false;
                    if (!Equal(e.Value, db[e.Key], depth + 1)) return false;
                }
                return true;
            }
            if (a is IEnumerable && b is IEnumerable)
            {
                var ea = ((IEnumerable)a).GetEnumerator(); var eb = ((IEnumerable)b).GetEnumerator();
                while (true)
                {
                    bool ma = ea.MoveNext(), mb = eb.MoveNext();
                    if (ma != mb) return false;
                    if (!ma) return true;
                    if (!Equal(ea.Current, eb.Current, depth + 1)) return false;
                }
            }
            if (a.Equals(b)) return true;
            bool any = false;
            foreach (var f in ta.GetFields(BindingFlags.Public | BindingFlags.Instance))
            {
                any = true;
                if (!Equal(f.GetValue(a), f.GetValue(b), depth + 1)) return false;
            }
            foreach (var p in ta.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (p.GetIndexParameters().Length > 0 || !p.CanRead) continue;
                any = true;
                if (!Equal(p.GetValue(a, null), p.GetValue(b, null), depth + 1)) return false;
            }
            return any;
        }
    }
}
