#pragma once
// See README.md: declarations only.
#include "gloo/context.h"
