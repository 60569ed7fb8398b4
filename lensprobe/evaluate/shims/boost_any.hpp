// Minimal stand-in for <boost/any.hpp> (installed as boost/any.hpp on an include path) used by two HumanEval-X C++ problems (CPP/22, CPP/137):
// boost::any and boost::any_cast map onto C++17 std::any / std::any_cast.
#ifndef LENSPROBE_BOOST_ANY_SHIM
#define LENSPROBE_BOOST_ANY_SHIM
#include <any>
namespace boost {
using std::any;
using std::any_cast;
using std::bad_any_cast;
}
#endif
