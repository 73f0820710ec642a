/* Every method nominal knows. Adding a method: its own file + one line here. */
#include <string.h>

#include "methods/method.h"

extern const method_ops patchcore_method;
extern const method_ops padim_method;

const method_ops *const method_registry[] = {
    &patchcore_method,
    &padim_method,
    NULL,
};

const method_ops *method_find(const char *name)
{
    for (int i = 0; method_registry[i]; i++)
        if (strcmp(method_registry[i]->name, name) == 0)
            return method_registry[i];
    return NULL;
}
