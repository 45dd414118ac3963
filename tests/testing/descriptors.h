// This process's open file descriptors, as /proc/self/fd lists them.
#ifndef PYHOST_TESTS_TESTING_DESCRIPTORS_H_
#define PYHOST_TESTS_TESTING_DESCRIPTORS_H_

#include <string>
#include <vector>

namespace pyhost::testutil {

// The numbers of the descriptors open now, ascending (not the one reading the list).
std::vector<int> OpenDescriptors();

// How many descriptors are open now (not the one reading the list).
int CountOpenDescriptors();

// What /proc/self/fd/FD links to ("socket:[123]", "pipe:[45]", a path), or "" if FD
// is not open.
std::string DescriptorTarget(int fd);

}  // namespace pyhost::testutil

#endif  // PYHOST_TESTS_TESTING_DESCRIPTORS_H_
